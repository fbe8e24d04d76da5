import sys
from pathlib import Path

# The collection is importable as ansible_collections.nasai.stack (collections/ links back to the
# repository), so the tests import the modules and their shared code exactly as Ansible does.
root = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(root / "collections"))
