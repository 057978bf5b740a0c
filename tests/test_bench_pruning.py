"""`xablate bench pruning`'s arithmetic on made-up rows: ratios to the unpruned search and whether the choices
agree (compared as values, before they are written as JSON)."""

from xablate.bench.pruning import compared


def test_ratios_and_same_choices_are_against_the_unpruned_row():
    rows = [{"pruner": "none", "tune_epochs": 100, "tune_train_seconds": 50.0, "choices": {"a": 0.01, "b": 0.1}},
            {"pruner": "median", "tune_epochs": 55, "tune_train_seconds": 30.0, "choices": {"b": 0.1, "a": 0.01}},
            {"pruner": "hyperband", "tune_epochs": 40, "tune_train_seconds": 20.0, "choices": {"a": 0.02, "b": 0.1}}]
    out = compared(rows)
    assert [r["epochs_ratio"] for r in out] == [1.0, 0.55, 0.4]
    assert [r["seconds_ratio"] for r in out] == [1.0, 0.6, 0.4]
    assert [r["same_choices"] for r in out] == [True, True, False]
    assert out[1]["choices"] == '{"a": 0.01, "b": 0.1}'
    assert rows[0]["choices"] == {"a": 0.01, "b": 0.1}  # the input rows are left as they were
