#!/usr/bin/python
# Copyright: nasai.stack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Send one HTTP request through a given proxy, the proxy (and its password) taken as a module
option instead of the environment."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: proxy_request
short_description: Send one HTTP request, through a proxy given as an option
version_added: 0.3.0
description:
  - Sends one request to O(url) and reports the status, without following redirects.
  - The proxy comes as O(proxy), a module option that is never logged, not from C(http_proxy) in
    the task's environment. Ansible puts a task's environment on the command line it runs on the
    host, where C(ps) and C(-vvv) show it, with any password in the proxy's URL.
  - Uses the Python standard library only (appliance NAS have no C(requests)).
attributes:
  check_mode:
    support: full
    details:
      - It only reads, so check mode runs it as usual.
  diff_mode:
    support: none
  idempotent:
    description: It changes nothing.
    support: full
  platform:
    platforms: posix
options:
  url:
    description: The URL to request.
    type: str
    required: true
  proxy:
    description:
      - The proxy's URL (C(http://user:password@host:port)), for both http and https URLs; empty
        sends the request direct.
    type: str
    default: ""
  method:
    description: The HTTP method.
    type: str
    default: HEAD
  timeout:
    description: Seconds to wait for the answer.
    type: int
    default: 10
author:
  - nasai.stack contributors (!UNKNOWN)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
"""

EXAMPLES = r"""
- name: HEAD a page through the proxy
  nasai.stack.proxy_request:
    url: http://deb.debian.org/
    proxy: "http://nasai:{{ vault_proxy_password }}@proxy.lan:3128"
  register: answer
"""

RETURN = r"""
status:
  description: The answer's HTTP status; -1 when no answer came (C(msg) says why).
  returned: always
  type: int
msg:
  description: Why no answer came (or the HTTP error's reason); empty for a plain answer.
  returned: always
  type: str
via:
  description: The answer's C(Via) header (proxies add theirs); empty without one.
  returned: always
  type: str
"""

import urllib.error
import urllib.request

from ansible.module_utils.basic import AnsibleModule


class NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer too: report it, do not follow it."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


def send(url, proxy, method, timeout):
    """(status, msg, via) of one request; status -1 when none came."""
    proxies = {"http": proxy, "https": proxy} if proxy else {}
    opener = urllib.request.build_opener(urllib.request.ProxyHandler(proxies), NoRedirect())
    try:
        with opener.open(urllib.request.Request(url, method=method), timeout=timeout) as answer:
            return answer.status, "", answer.headers.get("Via", "")
    except urllib.error.HTTPError as exc:
        return exc.code, str(exc.reason), (exc.headers or {}).get("Via", "")
    except urllib.error.URLError as exc:
        return -1, str(exc.reason), ""
    except OSError as exc:
        return -1, str(exc), ""


def main():
    module = AnsibleModule(
        argument_spec={
            "url": {"type": "str", "required": True},
            "proxy": {"type": "str", "default": "", "no_log": True},
            "method": {"type": "str", "default": "HEAD"},
            "timeout": {"type": "int", "default": 10},
        },
        supports_check_mode=True,
    )
    p = module.params
    status, msg, via = send(p["url"], p["proxy"], p["method"], p["timeout"])
    module.exit_json(changed=False, status=status, msg=msg, via=via)


if __name__ == "__main__":
    main()
