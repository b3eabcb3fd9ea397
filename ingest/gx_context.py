"""A workaround kept for a measured reason, in one place: an ephemeral Great Expectations
context without analytics and without GX hashing every row of a frame into a batch marker
that nothing here reads (36 s of a 1M-customer backfill; the expectations are unaffected).
``tests/test_workarounds.py`` fails when GX drops the setting this patches."""

from warehouse.tool_env import opt_out_of_great_expectations_analytics

# the module attribute patched, and the value that switches the hashing off
HASH_SETTING = ("great_expectations.execution_engine.pandas_execution_engine", "HASH_THRESHOLD")


def great_expectations_context():
    """(the gx module, an ephemeral context without progress bars)."""
    opt_out_of_great_expectations_analytics()
    import great_expectations as gx  # slow import; only when a suite runs
    from great_expectations.execution_engine import pandas_execution_engine

    pandas_execution_engine.HASH_THRESHOLD = 0
    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = {"globally": False}
    return gx, ctx
