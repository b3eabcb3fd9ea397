"""The labelled reply corpus: every reply using an opt-out keyword as a non-negated word is an
opt-out (the FCC's revocation rule), and the opt-out class is read with high precision."""

from benchmarks.reply_corpus import evaluate


def test_the_corpus_covers_four_languages_and_every_intent():
    e = evaluate()
    assert e["replies"] >= 300
    assert set(e["languages"]) == {"en", "fr", "de", "es"}
    assert all(m["n"] > 0 for m in e["per_intent"].values())


def test_every_non_negated_opt_out_keyword_is_an_opt_out():
    e = evaluate()
    assert e["fcc_keyword_replies"] >= 150
    assert e["fcc_keyword_recall"] == 1.0


def test_opt_outs_are_read_with_high_precision_and_recall():
    m = evaluate()["per_intent"]["opt_out"]
    assert m["recall"] == 1.0  # a missed opt-out is a violation: none on the corpus
    assert m["precision"] >= 0.97  # the keyword used in another sense is applied, flagged
