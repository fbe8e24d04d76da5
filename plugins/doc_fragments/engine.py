# Copyright: nasai.stack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The option every module that talks to the engine's API socket shares."""

from __future__ import annotations


class ModuleDocFragment:
    """nasai.stack.engine: the engine's API socket."""

    DOCUMENTATION = r"""
options:
  socket:
    description:
      - Path of the Docker engine's API socket. The module talks to it with the Python standard
        library only, so the host needs no C(requests) (appliance NAS have none).
    type: path
    default: /var/run/docker.sock
"""
