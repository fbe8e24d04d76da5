"""fstab lines kept by the collection's fstab_mount module (and swapfile): one line per mount point,
every other line as it was, no rewrite of an equal line."""

from ansible_collections.nasai.stack.plugins.module_utils.host import fstab_entry, fstab_lines
from ansible_collections.nasai.stack.plugins.modules.fstab_mount import is_mounted

FSTAB = "# static\nUUID=1 / ext4 defaults 0 1\nnas:/srv/m /models nfs vers=4.2,ro 0 0\n"
NFS = ["nas:/srv/m", "/models", "nfs", "vers=4.2,ro", "0", "0"]


def test_an_equal_line_is_kept_as_it_is_and_a_changed_one_replaced():
    assert fstab_entry(FSTAB, NFS, 1, "/models") == FSTAB
    spaced = FSTAB.replace("nas:/srv/m /models", "nas:/srv/m\t/models")
    assert fstab_entry(spaced, NFS, 1, "/models") == spaced
    changed = fstab_entry(FSTAB, NFS[:3] + ["vers=4.2,rw"] + NFS[4:], 1, "/models")
    assert changed == "# static\nUUID=1 / ext4 defaults 0 1\nnas:/srv/m /models nfs vers=4.2,rw 0 0\n"
    assert fstab_lines(changed, 1, "/models") == ["nas:/srv/m /models nfs vers=4.2,rw 0 0"]


def test_lines_are_added_once_and_removed_and_others_are_not_ours():
    base = "UUID=1 / ext4 defaults 0 1"
    added = fstab_entry(base, NFS, 1, "/models")
    assert added == base + "\nnas:/srv/m /models nfs vers=4.2,ro 0 0\n"
    assert fstab_entry(added + "other:/x /models nfs ro 0 0\n", NFS, 1, "/models") == added
    assert fstab_entry(added, None, 1, "/models") == base + "\n"
    assert fstab_entry("#nas:/srv/m /models nfs ro 0 0\n", None, 1, "/models") == "#nas:/srv/m /models nfs ro 0 0\n"


def test_is_mounted_reads_proc_mounts():
    mounts = "nas:/srv/m /models nfs4 ro 0 0\n/dev/sda1 /srv/my\\040disk ext4 rw 0 0\n"
    assert is_mounted("/models", mounts) and is_mounted("/srv/my disk", mounts)
    assert not is_mounted("/model", mounts)
