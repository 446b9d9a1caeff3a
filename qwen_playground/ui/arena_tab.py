"""The blind Arena and its Leaderboard.

Endpoints: `/arena_battle` (prompt) -> streamed (answer A, answer B, battle
id, reveal); `/arena_vote` (battle id, choice a|b|tie|bad) -> the reveal;
`/leaderboard` () -> the standings table.
"""

from __future__ import annotations

import gradio as gr

from ..arena import ArenaUnavailable, CHOICES, ArenaStore, VoteRefused, draw_pair, leaderboard
from ..backends import Backend
from ..chat import ChatTurn
from ..config import AppConfig
from ..generation import Request
from ..parallel import stream_all, stream_in_turn
from .common import Pacer, bubbles, require_text

COLUMNS = ["rank", "model", "rating", "95% interval", "votes", "wins", "losses", "ties / both bad"]


def standings_table(store: ArenaStore) -> list[list]:
    try:
        votes = store.votes()
    except ArenaUnavailable as e:
        gr.Warning(str(e))
        return []
    return [[rank, s.model, round(s.rating), f"{round(s.low)} – {round(s.high)}", s.votes, s.wins, s.losses, s.ties]
            for rank, s in enumerate(leaderboard(votes), 1)]


def build_arena_tab(config: AppConfig, backend: Backend, store: ArenaStore) -> None:
    registry = config.registry
    pool = config.settings.arena_pool or [m.id for m in registry.choices("chat")]
    gr.Markdown("Two anonymous models answer the same prompt. Vote for the better answer; the names are revealed only after "
                "your vote, and each battle takes one vote. Thinking is off for both, so neither gives itself away.")
    with gr.Row():
        prompt = gr.Textbox(label="Prompt", lines=2, scale=4)
        battle = gr.Button("New battle", variant="primary", scale=1)
    with gr.Row():
        chat_a = gr.Chatbot(label="Model A", height=380)
        chat_b = gr.Chatbot(label="Model B", height=380)
    with gr.Row():
        buttons = {choice: gr.Button(label, interactive=False) for choice, label in CHOICES.items()}
    battle_id = gr.Textbox(label="Battle id", visible=False)
    reveal = gr.Markdown(label="Reveal")

    def start_battle(prompt):
        text = require_text(prompt, "a prompt")
        try:
            model_a, model_b = draw_pair(pool)
        except ValueError as e:
            raise gr.Error(str(e)) from None
        try:
            current = store.new_battle(model_a, model_b)
        except ArenaUnavailable as e:
            raise gr.Error(str(e)) from None
        specs = [registry.get(model_a), registry.get(model_b)]
        requests = [Request(s.id, [{"role": "user", "content": text}], s.preset(False), thinking=False) for s in specs]
        runner = stream_in_turn if backend.fit_problem([model_a, model_b]) else stream_all
        turns = [ChatTurn(), ChatTurn()]
        user = {"role": "user", "content": text}
        locked = [gr.Button(interactive=False)] * len(buttons)
        yield [user], [user], current, "", *locked
        pacer = Pacer()
        for index, event in runner(backend, requests):
            turns[index].apply(event)
            if pacer.due(event, index):
                yield [user, *bubbles(turns[0])], [user, *bubbles(turns[1])], current, "", *locked
        yield [user, *bubbles(turns[0])], [user, *bubbles(turns[1])], current, "**Your vote?**", *[gr.Button(interactive=True)] * len(buttons)

    def arena_vote(battle_id: str, choice: str) -> str:
        """Vote on a battle (choice: a, b, tie or bad); returns which models A and B were."""
        try:
            model_a, model_b = store.vote((battle_id or "").strip(), (choice or "").strip().lower())
        except VoteRefused as e:
            raise gr.Error(str(e)) from None
        return f"Your vote: **{CHOICES[choice.strip().lower()]}**. Model A was **{model_a}**, model B was **{model_b}**."

    outputs = [chat_a, chat_b, battle_id, reveal, *buttons.values()]
    battle.click(start_battle, prompt, outputs, api_name="arena_battle", concurrency_id="generate")
    for choice, button in buttons.items():
        button.click(lambda b, c=choice: [arena_vote(b, c), *[gr.Button(interactive=False)] * len(buttons)],
                     battle_id, [reveal, *buttons.values()], api_visibility="private")
    gr.api(arena_vote, api_name="arena_vote")


def build_leaderboard_tab(store: ArenaStore) -> gr.Dataframe:
    gr.Markdown("Ratings are **Bradley-Terry** strengths fitted to all arena votes, on the Elo scale (1000 = average, "
                "+400 = ten-to-one odds of being preferred). The 95% interval comes from resampling the votes: "
                "a wide interval or few votes means the rating is not to be trusted yet. Ties and \"both bad\" count half to each.")
    table = gr.Dataframe(headers=COLUMNS, interactive=False, label="Leaderboard")
    refresh = gr.Button("Refresh")
    refresh.click(lambda: standings_table(store), None, table, api_name="leaderboard")
    return table
