import sys
from pathlib import Path

# The modules are plain files: import them by name for their pure helpers. Their shared code is
# imported as the collection's (collections/ links back to the repository).
root = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(root / "plugins" / "modules"))
sys.path.insert(0, str(root / "collections"))
