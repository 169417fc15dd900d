"""SyncOptions and the seed's merge order, on their own and through the
Backups facade, for backups and for restores.

The expected values come from issue 2's precedence lists, written out here
independently of the implementation:

    backup  = options < backup_options  < sync.options < sync.backup_options
    restore = options < restore_options < sync.options < sync.restore_options

and a later layer's ``exclude`` *replaces* an earlier one (object spread).
"""

from __future__ import annotations

import dataclasses
import itertools

import pytest

from syncengine import Backups, BackupSync, Layout, SyncOptions, merge_options

LAYOUT = Layout(volumes_root="/srv/volumes", backup_root="/srv/backup")


# -- SyncOptions itself -----------------------------------------------------------

def test_defaults_are_the_seeds():
    opts = SyncOptions()
    assert opts.delete is True
    assert opts.exclude == ()


def test_options_are_frozen_and_hashable():
    opts = SyncOptions(exclude=["*.tmp", "cache/"])
    assert opts.exclude == ("*.tmp", "cache/")  # a list becomes a tuple, order kept
    with pytest.raises(dataclasses.FrozenInstanceError):
        opts.delete = False  # type: ignore[misc]
    assert hash(opts) == hash(SyncOptions(exclude=("*.tmp", "cache/")))


@pytest.mark.parametrize("kwargs, fragment", [
    ({"delete": "yes"}, "delete"),
    ({"delete": 1}, "delete"),
    ({"exclude": "*.tmp"}, "list of patterns"),
    ({"exclude": [b"*.tmp"]}, "string"),
    ({"exclude": ["a\0b"]}, "NUL"),
])
def test_bad_option_values_raise_valueerror(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        SyncOptions(**kwargs)


# -- merge_options: key by key, later wins ------------------------------------------

def test_merge_of_nothing_is_the_defaults():
    assert merge_options() == SyncOptions()
    assert merge_options(None, {}, None) == SyncOptions()


def test_later_exclude_replaces_earlier_exclude():
    merged = merge_options({"exclude": ["a", "b"]}, {"exclude": ["c"]})
    assert merged.exclude == ("c",)


def test_empty_exclude_in_a_later_layer_clears_it():
    assert merge_options({"exclude": ["a"]}, {"exclude": []}).exclude == ()
    assert merge_options({"exclude": ["a"]}, {"exclude": None}).exclude == ()


def test_keys_merge_independently():
    merged = merge_options({"exclude": ["a"]}, {"delete": False})
    assert merged == SyncOptions(delete=False, exclude=("a",))
    merged = merge_options({"delete": False}, {"exclude": ["b"]}, {"delete": True})
    assert merged == SyncOptions(delete=True, exclude=("b",))


def test_a_full_syncoptions_layer_sets_every_key():
    # A SyncOptions is a complete object: its (default) exclude=() replaces
    # the earlier layer's, as `{...a, ...DEFAULT_OPTIONS}` would in the seed.
    merged = merge_options({"exclude": ["a"], "delete": False}, SyncOptions())
    assert merged == SyncOptions()


def test_unknown_option_key_is_refused_by_name():
    with pytest.raises(ValueError, match="exlude"):
        merge_options({"exlude": ["typo"]})


def test_a_non_mapping_layer_is_refused():
    with pytest.raises(ValueError, match="SyncOptions or a mapping"):
        merge_options(["*.tmp"])  # type: ignore[arg-type]


# -- the facade's layers, every combination, both directions ------------------------

FACADE_LAYERS = ("options", "backup_options", "restore_options")
SYNC_LAYERS = ("sync.options", "sync.backup_options", "sync.restore_options")
BACKUP_ORDER = ("options", "backup_options", "sync.options", "sync.backup_options")
RESTORE_ORDER = ("options", "restore_options", "sync.options", "sync.restore_options")
ALL_LAYERS = FACADE_LAYERS + SYNC_LAYERS


def _facade_with(layers: set[str]) -> tuple[Backups, BackupSync]:
    """A facade where each layer in ``layers`` excludes a pattern naming it."""
    def layer(name):
        return {"exclude": [name]} if name in layers else None

    sync = BackupSync(data_path="/srv/volumes/main/", backup_path="/srv/backup/volumes/main/",
                      options=layer("sync.options"), backup_options=layer("sync.backup_options"),
                      restore_options=layer("sync.restore_options"))
    backups = Backups.of_syncs(sync, layout=LAYOUT)
    backups.set_options(layer("options"))
    backups.set_backup_options(layer("backup_options"))
    backups.set_restore_options(layer("restore_options"))
    return backups, sync


def _expected(order: tuple[str, ...], layers: set[str]) -> tuple[str, ...]:
    winners = [name for name in order if name in layers]
    return (winners[-1],) if winners else ()


ALL_SUBSETS = [set(c) for n in range(len(ALL_LAYERS) + 1)
               for c in itertools.combinations(ALL_LAYERS, n)]


@pytest.mark.parametrize("layers", ALL_SUBSETS, ids=lambda s: "+".join(sorted(s)) or "none")
def test_every_layer_combination_merges_in_the_seeds_order(layers):
    backups, sync = _facade_with(layers)
    assert backups.backup_options_for(sync).exclude == _expected(BACKUP_ORDER, layers)
    assert backups.restore_options_for(sync).exclude == _expected(RESTORE_ORDER, layers)


def test_restore_ignores_backup_options_and_backup_ignores_restore_options():
    # The seed's bug: restores merged the *backup* options.
    backups, sync = _facade_with({"backup_options", "sync.backup_options"})
    assert backups.restore_options_for(sync) == SyncOptions()
    backups, sync = _facade_with({"restore_options", "sync.restore_options"})
    assert backups.backup_options_for(sync) == SyncOptions()


def test_delete_and_exclude_come_from_different_layers():
    sync = BackupSync(data_path="/srv/volumes/main/", backup_path="/srv/backup/volumes/main/",
                      restore_options={"delete": False})
    backups = (Backups.with_options({"exclude": ["*.tmp"]}, layout=LAYOUT)
               .set_backup_options({"delete": False})
               .add_sync(sync))
    assert backups.backup_options_for(sync) == SyncOptions(delete=False, exclude=("*.tmp",))
    assert backups.restore_options_for(sync) == SyncOptions(delete=False, exclude=("*.tmp",))
    plain = BackupSync(data_path="/srv/volumes/b/", backup_path="/srv/backup/volumes/b/")
    backups.add_sync(plain)
    assert backups.restore_options_for(plain) == SyncOptions(delete=True, exclude=("*.tmp",))


def test_setters_merge_into_the_layer_like_object_spread():
    backups = Backups.of_volumes("main", layout=LAYOUT)
    sync = backups.syncs[0]
    backups.set_options({"exclude": ["a"]}).set_options({"delete": False})
    assert backups.backup_options_for(sync) == SyncOptions(delete=False, exclude=("a",))
    backups.set_options({"exclude": ["b"]})  # replaces, does not extend
    assert backups.backup_options_for(sync) == SyncOptions(delete=False, exclude=("b",))
    backups.set_options(None)  # nothing to merge: unchanged
    assert backups.backup_options_for(sync) == SyncOptions(delete=False, exclude=("b",))


def test_with_options_starts_from_the_defaults():
    backups = Backups.with_options({"exclude": ["cache/"]}, layout=LAYOUT).add_volume("main")
    assert backups.backup_options_for(backups.syncs[0]) == SyncOptions(exclude=("cache/",))
    plain = Backups.with_options(None, layout=LAYOUT).add_volume("m")
    assert plain.backup_options_for(plain.syncs[0]) == SyncOptions()
    assert plain.restore_options_for(plain.syncs[0]) == SyncOptions()


def test_add_volume_per_volume_options_in_both_directions():
    backups = (Backups.with_options({"exclude": ["*.tmp"]}, layout=LAYOUT)
               .add_volume("main")
               .add_volume("logs", backup_options={"exclude": ["*.log"]},
                           restore_options={"delete": False}))
    main, logs = backups.syncs
    assert backups.backup_options_for(main) == SyncOptions(exclude=("*.tmp",))
    assert backups.backup_options_for(logs) == SyncOptions(exclude=("*.log",))
    assert backups.restore_options_for(logs) == SyncOptions(delete=False, exclude=("*.tmp",))
    assert logs.data_path == "/srv/volumes/logs/"
    assert logs.backup_path == "/srv/backup/volumes/logs/"


def test_a_layer_is_copied_when_set():
    patterns = ["a"]
    backups = Backups.of_volumes("main", layout=LAYOUT).set_backup_options({"exclude": patterns})
    patterns.append("b")  # the caller's list changing later must not leak in
    assert backups.backup_options_for(backups.syncs[0]).exclude == ("a",)


def test_a_one_shot_iterable_of_patterns_is_kept():
    backups = Backups.with_options({"exclude": (p for p in ["x", "y"])}, layout=LAYOUT)
    backups.add_volume("main")
    assert backups.backup_options_for(backups.syncs[0]).exclude == ("x", "y")


@pytest.mark.parametrize("setter", ["set_options", "set_backup_options", "set_restore_options"])
def test_setters_refuse_bad_layers_at_once(setter):
    backups = Backups.of_volumes("main", layout=LAYOUT)
    with pytest.raises(ValueError, match="unknown sync option"):
        getattr(backups, setter)({"exclud": ["x"]})
    with pytest.raises(ValueError, match="list of patterns"):
        getattr(backups, setter)({"exclude": "*.tmp"})


def test_backupsync_refuses_bad_options_at_construction():
    with pytest.raises(ValueError, match="delete"):
        BackupSync(data_path="/srv/volumes/m/", backup_path="/srv/backup/m/",
                   restore_options={"delete": "no"})
