#!/usr/bin/python3
"""payload.py - writes the agent-desktop batch templates the bench sends.

  payload.py --records N --out FILE [--seed S]

A template is the JSON body of one POST /api/v1/telemetry (appName wwe_ui) holding N trace
records of about 250 bytes each: an RFC 3339 timestamp, a level, a message of the kind the
agent desktop logs, and 4 properties of the wwe_ui contract (connId, interactionId,
agentSessionId, browserSessionId).

The text @ID@ marks where each load generator puts the batch's tag, a 16-hex-digit id unique
per batch in a bench run: in `batchId` and in every record's `interactionId`. The tag comes
through to the stdout lines (interactionId is on the contract's allow-list), which is how
bench/check.py matches written lines to acknowledged batches.
"""
import argparse
import json
import random

LEVELS = ["info"] * 6 + ["debug"] * 3 + ["warn", "error"]
QUEUES = ["Support_EN", "Billing_FR", "Sales_DE", "VIP_Callback", "Retention_ES"]
STATES = ["Ringing", "Established", "Held", "Retrieved", "Released", "Dialing"]
MEDIA = ["voice", "chat", "email", "workitem"]
MESSAGES = [
    "[InteractionManager] interaction state {s1} -> {s2} (media={m}, queue={q})",
    "[VoiceChannel] EventEstablished on DN 5{n4}, party count 2, duration {ms} ms",
    "[ContactCenterSession] StartContactCenterSession answered in {ms} ms",
    "[AttachedData] AttachUserData {k} keys for interaction, took {ms} ms",
    "[StatServer] statistic CurrentReadyAgents refreshed: {n2} ready in {q}",
    "[UI] agent state changed to NotReady (reason code {n2}) after {ms} ms",
    "[Softphone] SIP registration refreshed, expires in 1800 s, rtt {ms} ms",
    "[Chat] message delivered to visitor, queue {q}, {n2} unread",
    "[Disposition] disposition code Resolved_{n2} set before release",
    "[HttpClient] GET /api/v2/me/workbins answered 200 in {ms} ms",
]


def record(rng):
    msg = rng.choice(MESSAGES).format(
        s1=rng.choice(STATES), s2=rng.choice(STATES), m=rng.choice(MEDIA), q=rng.choice(QUEUES),
        n4=rng.randint(1000, 9999), n2=rng.randint(1, 99), ms=rng.randint(3, 1800), k=rng.randint(2, 24))
    ts = "2026-11-24T10:%02d:%02d.%03dZ" % (rng.randint(0, 59), rng.randint(0, 59), rng.randint(0, 999))
    return {
        "ts": ts,
        "level": rng.choice(LEVELS),
        "msg": msg,
        "properties": {
            "connId": "%012x" % rng.getrandbits(48),
            "interactionId": "@ID@",
            "agentSessionId": "as-%010x" % rng.getrandbits(40),
            "browserSessionId": "bs-%010x" % rng.getrandbits(40),
        },
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args()
    rng = random.Random(a.seed * 100003 + a.records)
    body = {"appName": "wwe_ui", "batchId": "@ID@", "traces": [record(rng) for _ in range(a.records)]}
    text = json.dumps(body, separators=(",", ":"))
    with open(a.out, "w") as f:
        f.write(text)


if __name__ == "__main__":
    main()
