#!/usr/bin/env python3
"""Convert the hand labels of the third-party corpora into billable's labels format
(docs/eval.md), so `billable eval` scores them with the project's own code.

    python3 scripts/convert-labels.py real-dev     SRC/labels.json > tests/corpora/real-dev/labels.json
    python3 scripts/convert-labels.py berkeley-dev SRC/labels.json > tests/corpora/berkeley-dev/labels.json

real-dev (a list of labels with category, reason, client, billed range, weight) and
berkeley-dev (an object keyed by Message-ID with the annotators' genre) keep what the
scoring needs; the rest (votes, sources, what the tool did when labelling) stays in the
corpus's own files. Python 3 standard library only; the output is deterministic.
"""
import json
import sys

# The Berkeley annotators' coarse genres (see tests/corpora/berkeley-dev/README.md).
GENRE = {"1.1": "business", "1.2": "purely personal", "1.3": "personal, professional context",
         "1.4": "logistics", "1.5": "employment", "1.6": "document editing",
         "1.7": "empty (attachment)", "1.8": "empty"}


def real_dev(doc):
    out = []
    for lab in doc["labels"]:
        row = {"message_id": lab["message_id"], "billable": bool(lab["billable"]), "class": lab["category"]}
        if lab["billable"]:
            row["client"] = lab["client"]
            if lab.get("client_alternatives"):
                row["client_alternatives"] = lab["client_alternatives"]
            row["billed_min"] = lab["billed_min"]
            row["billed_max"] = lab["billed_max"]
        # Not-billable labels carry the activity the message would have had.
        row["activity"] = lab["activity"]
        row["weight"] = lab["weight"]
        row["subject"] = lab["subject"]
        row["note"] = lab["reason"]
        out.append(row)
    return {"version": 1, "settings": "settings.json",
            "source": "real-dev/labels.json (hand labels, 130 stratified; weight = messages each stands for)",
            "labels": out}


def berkeley_dev(doc):
    out = []
    for mid in sorted(doc):
        lab = doc[mid]
        want = lab["billable"]
        if want not in (True, False, "either"):
            raise SystemExit("%s: billable is %r, expected true, false or \"either\"" % (mid, want))
        out.append({"message_id": mid, "billable": None if want == "either" else want,
                    "class": "%s %s" % (lab["category"], GENRE[lab["category"]]),
                    "subject": lab.get("subject", "")})
    return {"version": 1, "settings": "settings.json",
            "source": "berkeley-dev/labels.json (UC Berkeley genres; 1.4 and 1.7 are either: null)",
            "labels": out}


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("real-dev", "berkeley-dev"):
        sys.exit(__doc__)
    with open(sys.argv[2], encoding="utf-8") as f:
        doc = json.load(f)
    converted = real_dev(doc) if sys.argv[1] == "real-dev" else berkeley_dev(doc)
    json.dump(converted, sys.stdout, indent=1, ensure_ascii=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
