"""Hardware-in-the-loop qualification as pytest fixtures (the ``roadside.hil`` pytest plugin).

Installed with Roadside (entry point ``pytest11``), so a qualification test is a few lines::

    import pytest

    pytestmark = pytest.mark.hil_run("qualify.toml")     # or: pytest --hil-run-file FILE

    def test_the_gateway_qualifies(hil_scorecard):
        assert hil_scorecard["passed"], hil_scorecard["checkpoints"]
        assert all(k["missed"] == 0 for k in hil_scorecard["qc"].values())

The same test runs against the project's own agent on this machine (a run file with
``[dut.agent]``) or against a gateway on the bench (a run file naming its broker, status URL or
buffer copy); ``--hil-run-file`` swaps the run file without touching the test. See
:mod:`roadside.hil.plugin` for the fixtures and options, :mod:`sim.hil.runfile` for run files.
"""
