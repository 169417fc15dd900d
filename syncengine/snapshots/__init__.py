"""Versioned backups: snapshots of a backup root, and which to keep.

``BACKUP_ROOT/snapshots/<ID>/volumes/<name>/`` and
``BACKUP_ROOT/snapshots/<ID>/dataVersion.txt``, each built with rsync's
``--link-dest`` against the newest complete snapshot (unchanged files are
hard links).  No engine code here: the facade and the CLI drive it.

- :mod:`.ids`: the IDs (a sortable UTC time, a suffix within one second);
- :mod:`.store`: begin / commit / abandon a snapshot, list, delete,
  remove what killed runs left;
- :mod:`.retention`: borg prune's rules, and the ``[snapshots]`` table;
- :mod:`.probe`: whether hard links work at a backup root;
- :mod:`.report`: list with sizes, prune, diff.
"""

from .ids import SnapshotId, format_id, id_sort_key, is_snapshot_id, parse_id
from .probe import hard_link_problem, probe_hard_links
from .report import SnapshotInfo, describe_snapshots, iter_snapshot_changes, prune_snapshots
from .retention import RULES, Decision, RetentionError, RetentionPolicy, plan_retention, policy_from_table
from .store import (
                        DATA_VERSION_FILE,
                        SNAPSHOTS_DIR,
                        VOLUMES_DIR,
                        Snapshot,
                        SnapshotBuild,
                        SnapshotBusy,
                        SnapshotError,
                        begin_snapshot,
                        delete_snapshot,
                        find_snapshot,
                        latest_snapshot,
                        list_snapshots,
                        remove_leftovers,
)

__all__ = [
    "DATA_VERSION_FILE", "SNAPSHOTS_DIR", "VOLUMES_DIR", "RULES",
    "Decision", "RetentionError", "RetentionPolicy", "Snapshot", "SnapshotBuild", "SnapshotBusy",
    "SnapshotError",
    "SnapshotId", "SnapshotInfo",
    "begin_snapshot", "delete_snapshot", "describe_snapshots", "find_snapshot", "format_id",
    "hard_link_problem", "id_sort_key", "is_snapshot_id", "iter_snapshot_changes",
    "latest_snapshot", "list_snapshots", "parse_id", "plan_retention", "policy_from_table",
    "probe_hard_links", "prune_snapshots", "remove_leftovers",
]
