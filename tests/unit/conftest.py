import sys
from pathlib import Path

# The modules are plain files; import them by name for their pure helpers.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "plugins" / "modules"))
