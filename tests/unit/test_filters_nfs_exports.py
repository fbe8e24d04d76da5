"""exports(5) lines of the nfs_models role, as the Jinja they replace wrote them."""

from ansible_collections.nasai.stack.plugins.filter.nfs_exports import nfs_export_lines


def test_defaults_give_read_only_sync_root_squash():
    exports = [{"path": "/srv/models", "clients": [{"host": "192.168.1.0/24"}, {"host": "nas2", "access": "rw"}]}]
    assert nfs_export_lines(exports) == [
        "/srv/models 192.168.1.0/24(ro,sync,no_subtree_check,root_squash) nas2(rw,sync,no_subtree_check,root_squash)"]


def test_own_options_replace_sync_and_subtree_check_and_all_squash_maps_ids():
    exports = [{"path": "/m", "clients": [{"host": "*", "squash": "all_squash", "options": ["async", "subtree_check"]}]},
               {"path": "/n", "clients": [{"host": "h", "squash": "no_root_squash", "access": None}]}]
    assert nfs_export_lines(exports, uid=1000, gid="100") == [
        "/m *(ro,all_squash,anonuid=1000,anongid=100,async,subtree_check)",
        "/n h(ro,sync,no_subtree_check,no_root_squash)"]
    assert nfs_export_lines(exports[:1]) == ["/m *(ro,all_squash,async,subtree_check)"]
