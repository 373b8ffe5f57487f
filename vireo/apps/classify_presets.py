"""Ready-made label sets for the classify app: the task, each label and what it means."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Preset:
    task: str
    labels: dict[str, str]  # name -> description
    pair: bool = False  # the input is two texts (premise, hypothesis)


PRESETS: dict[str, Preset] = {
    "sentiment": Preset(
        "Classify the sentiment the writer expresses.",
        {
            "positive": "the writer is pleased, happy or approving",
            "negative": "the writer is unhappy, angry or disapproving",
            "neutral": "no clear feeling either way, or plain facts",
        },
    ),
    "spam": Preset(
        "Decide whether the message is spam.",
        {
            "spam": "unsolicited advertising, scams, phishing, prizes, 'click here' offers",
            "not spam": "a normal personal or work message",
        },
    ),
    "news_topic": Preset(
        "Classify the news text by its topic.",
        {
            "world": "international affairs, politics, wars, governments, diplomacy",
            "sports": "games, matches, athletes, teams, tournaments",
            "business": "companies, markets, economy, money, trade",
            "science and technology": "research, computers, internet, gadgets, space, medicine",
        },
    ),
    "feedback": Preset(
        "Classify the customer feedback by what it is about.",
        {
            "bug report": "something in the product is broken or behaves wrongly",
            "feature request": "asks for a new capability or an improvement",
            "billing": "charges, invoices, refunds, prices, payments, subscriptions",
            "praise": "compliments, thanks, the customer is happy",
            "question": "asks how to do something or for information",
        },
    ),
    "nli": Preset(
        "Given a premise and a hypothesis, decide whether the premise entails the hypothesis.",
        {
            "entailment": "if the premise is true, the hypothesis must be true",
            "neutral": "the premise neither proves nor rules out the hypothesis",
            "contradiction": "if the premise is true, the hypothesis must be false",
        },
        pair=True,
    ),
}

PRESET_NAMES = tuple(PRESETS)
