"""The blind Arena and its Leaderboard.

Endpoints: `/arena_battle` (prompt) -> streamed (answer A, answer B, battle
id, reveal); `/arena_vote` (battle id, choice a|b|tie|bad) -> the reveal;
`/leaderboard` () -> the standings table.
"""

from __future__ import annotations

import gradio as gr

from ..arena_store import CHOICES, MIN_VOTES, ArenaStore, ArenaUnavailable, leaderboard
from ..core.config import AppConfig
from ..service import Service
from ..tasks import arena as task
from .chat_view import render
from .common import admitted, refusals, when_valid

COLUMNS = ["rank", "model", "rating", "95% interval", "votes", "wins", "losses", "ties / both bad"]


def standings_table(store: ArenaStore) -> list[list]:
    try:
        votes = store.votes()
    except ArenaUnavailable as e:
        gr.Warning(str(e))
        return []
    board = leaderboard(votes)  # the models with too few votes come last, unranked
    return [[rank if s.settled else "–", s.model, round(s.rating),
             f"{round(s.low)} – {round(s.high)}" if s.settled else f"too few votes (under {MIN_VOTES})", s.votes, s.wins, s.losses, s.ties]
            for rank, s in enumerate(board, 1)]


def build_arena_tab(config: AppConfig, service: Service, store: ArenaStore) -> list:
    """Build the tab; returns the vote events, after which the leaderboard refreshes."""
    # by default the chat route's models, less those whose server needs a key nobody set
    pool = config.settings.arena_pool or [m.id for m in config.registry.choices("chat") if not config.registry.missing_key(m)]
    gr.Markdown("Two anonymous models answer the same prompt. Vote for the better answer; the names are revealed only after "
                "your vote, and each battle takes one vote. Thinking is off for both, so neither gives itself away.")
    if config.demo:
        gr.Markdown("*Demo mode: each tiny model always says its own scripted greeting, so once you have seen them you can tell "
                    "who is who. With real models the answers do not give the names away.*")
    with gr.Row():
        prompt = gr.Textbox(label="Prompt", lines=1, max_lines=6, scale=4, placeholder="Enter starts a battle, Shift+Enter a new line")
        battle = gr.Button("New battle", variant="primary", scale=1)
    with gr.Row():
        chat_a = gr.Chatbot(label="Model A", height=380)
        chat_b = gr.Chatbot(label="Model B", height=380)
    with gr.Row():
        buttons = [gr.Button(label, interactive=False) for label in CHOICES.values()]
    battle_id = gr.Textbox(label="Battle id", visible=False)
    reveal = gr.Markdown(label="Reveal")
    why = gr.Button("🔎 Why these tokens?", visible=False, size="sm")  # after the vote: its note names the models
    shown = gr.State()  # the last battle's answers, for "why these tokens?"

    def start_battle(prompt, request: gr.Request = None):
        user = admitted(service, request)
        with refusals():
            current = task.prepare(config, store, pool, prompt, user)
        for view in task.run(service, current):
            ready = view.done
            yield (render(view.a, protect=False, footer=False), render(view.b, protect=False, footer=False), current.battle_id,
                   "**Your vote?**" if ready else "", *[gr.Button(interactive=ready)] * len(buttons), view, gr.Button(visible=False))

    def explain(view):
        if view is None:
            return gr.skip(), gr.skip()
        view = task.explain(service, view)
        return render(view.a, protect=False, footer=False), render(view.b, protect=False, footer=False)

    def arena_vote(battle_id: str, choice: str) -> str:
        """Vote on a battle (choice: a, b, tie or bad); returns which models A and B were."""
        with refusals():
            return task.vote(store, battle_id, choice)

    for trigger, api_name in ((battle.click, "arena_battle"), (prompt.submit, None)):  # the button, or Enter in the prompt
        when_valid(trigger, start_battle, lambda prompt: task.check_prompt(config, pool, prompt), [prompt],
                   [chat_a, chat_b, battle_id, reveal, *buttons, shown, why], api_name=api_name, concurrency_id="generate")
    votes = [button.click(lambda b, c=choice: [arena_vote(b, c), *[gr.Button(interactive=False)] * len(buttons), gr.Button(visible=True)],
                          battle_id, [reveal, *buttons, why], api_visibility="private") for choice, button in zip(CHOICES, buttons, strict=True)]
    why.click(explain, shown, [chat_a, chat_b], api_visibility="private", concurrency_id="generate")
    gr.api(arena_vote, api_name="arena_vote")
    return votes


def build_leaderboard_tab(store: ArenaStore) -> gr.Dataframe:
    gr.Markdown("Ratings are **Bradley-Terry** strengths fitted to all arena votes, on the Elo scale (1000 = average, "
                "+400 = ten-to-one odds of being preferred). The 95% interval comes from resampling the votes: "
                f"a wide interval or few votes means the rating is not to be trusted yet (under {MIN_VOTES} votes the board says so). "
                "Ties and \"both bad\" count half to each. The board updates after every vote.")
    table = gr.Dataframe(headers=COLUMNS, interactive=False, label="Leaderboard")
    refresh = gr.Button("Refresh")
    refresh.click(lambda: standings_table(store), None, table, api_name="leaderboard")
    return table
