"""Results: the run folder, written atomically by one process and read back by any.

``RunStore`` (``writer``) owns a run folder while a run writes it: one atomic part per finished
trial, consolidated into the three Parquet tables, under a lock (``lock``). ``RunData``
(``reader``) reads a run back (manifest, tables, trained models) for analysis and reports;
``folder`` reads the manifest and the quarantine without changing anything, ``ensemble`` adds a
grid point's spread over seeds, ``names`` checks names that become paths. The columns are
``bench/schema.py``'s.

Above training (it stores a ``TrialResult``, and redraws a trial's data and model to plot it);
it never imports the training loop.
"""

from bench.results.folder import QUARANTINE, quarantined, read_manifest
from bench.results.lock import RunLock
from bench.results.reader import RunData
from bench.results.writer import SCHEMA_VERSION, TABLES, RunStore, to_arrow

__all__ = ["QUARANTINE", "SCHEMA_VERSION", "TABLES", "RunData", "RunLock", "RunStore",
           "quarantined", "read_manifest", "to_arrow"]
