"""Task prompt templates: one YAML file per task in `prompts/`, rendered strictly.

A template has a `system` prompt, a `user` template and `variables` with
defaults. Rendering uses Jinja2's sandbox with StrictUndefined, so a missing
variable is an error that names it. Values (what a user typed) are data: they
are inserted as text and never parsed as template code.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

import jinja2
import yaml
from jinja2.sandbox import SandboxedEnvironment

PROMPTS_DIR = Path(__file__).resolve().parents[2] / "prompts"
_ENV = SandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True)


class TemplateError(ValueError):
    """A template file is malformed or a render is missing a variable."""


@dataclass(frozen=True)
class PromptTemplate:
    name: str
    system: str
    user: str
    variables: dict[str, object] = field(default_factory=dict)  # name -> default (None: required)
    description: str = ""

    def render_system(self, **values: object) -> str:
        return self._render(self.system, values)

    def render_user(self, **values: object) -> str:
        return self._render(self.user, values)

    def _render(self, source: str, values: dict) -> str:
        unknown = set(values) - set(self.variables)
        if unknown:
            raise TemplateError(f"Template '{self.name}' has no variable(s) {', '.join(sorted(unknown))}; it takes: {', '.join(self.variables)}")
        merged = {k: v for k, v in self.variables.items() if v is not None} | values
        try:
            return _ENV.from_string(source).render(**merged)
        except jinja2.UndefinedError as e:
            raise TemplateError(f"Template '{self.name}' needs a value: {e.message}") from None
        except jinja2.TemplateError as e:
            raise TemplateError(f"Template '{self.name}' is broken: {e}") from None


def parse_template(name: str, data: object) -> PromptTemplate:
    if not isinstance(data, dict):
        raise TemplateError(f"prompts/{name}.yaml must be a mapping with system, user and variables")
    allowed = {"system", "user", "variables", "description"}
    extra = set(data) - allowed
    if extra:
        raise TemplateError(f"prompts/{name}.yaml: unknown key(s) {', '.join(sorted(extra))}; allowed: {', '.join(sorted(allowed))}")
    if "user" not in data:
        raise TemplateError(f"prompts/{name}.yaml: missing 'user' template")
    variables = data.get("variables") or {}
    if not isinstance(variables, dict):
        raise TemplateError(f"prompts/{name}.yaml: 'variables' must map names to defaults (null = required)")
    template = PromptTemplate(name, str(data.get("system") or ""), str(data["user"]), dict(variables), str(data.get("description") or ""))
    for source in (template.system, template.user):
        try:
            _ENV.parse(source)
        except jinja2.TemplateSyntaxError as e:
            raise TemplateError(f"prompts/{name}.yaml: template syntax error: {e}") from None
    return template


@functools.cache
def load_template(name: str, directory: Path = PROMPTS_DIR) -> PromptTemplate:
    path = directory / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in directory.glob("*.yaml"))
        raise TemplateError(f"No prompt template '{name}' in {directory}; have: {', '.join(known)}")
    return parse_template(name, yaml.safe_load(path.read_text(encoding="utf-8")))
