#!/usr/bin/env python
# Copyright: nasai.stack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run ``ansible-test sanity`` on this collection, offline, with the project's own virtualenv.

Usage (what ``make sanity`` runs)::

    .venv/bin/python tests/sanity/run.py [ansible-test sanity options]

Two things stop a plain ``ansible-test sanity`` here:

* ansible-test finds the collection from ``os.getcwd()``, which resolves symbolic links, so
  ``collections/ansible_collections/nasai/stack`` (a link back to the repository root) reads as
  the repository root, outside any ``ansible_collections`` tree. The runner therefore copies the
  collection's files, the ones git knows (tracked, or new and not ignored: the files ansible-test
  itself would test), into ``.cache/sanity/ansible_collections/<namespace>/<name>/`` and runs
  there. The copy has no ``.git`` (ansible-test lists its files by walking it) and its results,
  under ``tests/output/``, stay out of the working tree.
* For every sanity test with Python requirements, ansible-test builds a virtualenv under
  ``~/.ansible/test/venv`` and fills it from the network (pip's bootstrap script from
  ci-files.testing.ansible.com, then PyPI). Here those requirements are pinned in
  ``requirements.txt`` and already installed in the interpreter that runs this script, so the
  runner hands that interpreter to those tests instead. Tests without requirements, the import
  test's module half among them (modules must import with nothing but the standard library and
  ansible-core), keep ansible-test's own empty virtualenv, which it creates without a download.

Nothing else of ansible-test changes: its tests, their configuration (pylint rc files, yamllint
rules, validate-modules schema) and ``tests/sanity/ignore-X.Y.txt`` apply as usual.
"""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Development links, not content: the collections/ link back to the repository root.
SKIP_PREFIXES = ('collections/',)


def collection_files() -> list[str]:
    """Return the repository's files as ansible-test's git source provider would list them."""
    out = subprocess.run(
        ['git', 'ls-files', '-z', '--cached', '--others', '--exclude-standard'],
        cwd=REPO, check=True, capture_output=True,
    ).stdout.decode()
    return sorted(path for path in out.split('\0') if path and not path.startswith(SKIP_PREFIXES))


def copy_collection() -> str:
    """Copy the collection into an ansible_collections tree under .cache/ and return its path."""
    with open(os.path.join(REPO, 'galaxy.yml'), encoding='utf-8') as galaxy_file:
        galaxy = yaml.safe_load(galaxy_file)

    root = os.path.join(REPO, '.cache', 'sanity')
    dest = os.path.join(root, 'ansible_collections', galaxy['namespace'], galaxy['name'])
    shutil.rmtree(root, ignore_errors=True)

    for path in collection_files():
        src = os.path.join(REPO, path)
        if not os.path.lexists(src):  # deleted in the working tree, not yet in the index
            continue
        target = os.path.join(dest, path)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copy2(src, target, follow_symlinks=False)  # keeps modes: the shebang test reads them

    return dest


def use_this_interpreter() -> None:
    """Give sanity tests with requirements this interpreter instead of a downloaded virtualenv."""
    # pylint: disable=import-outside-toplevel
    from ansible_test._internal import delegation
    from ansible_test._internal.commands import sanity
    from ansible_test._internal.host_configs import VirtualPythonConfig
    from ansible_test._internal.python_requirements import collect_requirements
    from ansible_test._internal.util import ApplicationError

    sanity_import = importlib.import_module('ansible_test._internal.commands.sanity.import')
    create_virtualenv = sanity.create_sanity_virtualenv
    check_virtualenv_yaml = sanity.check_sanity_virtualenv_yaml

    def create_sanity_virtualenv(args, python, name, coverage=False, minimize=False):
        commands = collect_requirements(python=python, controller=True, command=None, ansible=False,
                                        coverage=coverage, minimize=minimize, sanity=name)
        if not commands:  # nothing to install: ansible-test's empty virtualenv, made offline
            return create_virtualenv(args, python, name, coverage=coverage, minimize=minimize)
        if python.version != '%d.%d' % sys.version_info[:2]:
            raise ApplicationError('Sanity test "%s" needs Python %s; this runner has only %s.'
                                   % (name, python.version, sys.executable))
        return VirtualPythonConfig(version=python.version, path=sys.executable)

    def check_sanity_virtualenv_yaml(python):
        if python.path == sys.executable:
            return bool(getattr(yaml, '__with_libyaml__', False))
        return check_virtualenv_yaml(python)

    def delegate(*_args, **_kwargs):
        raise ApplicationError('tests/sanity/run.py runs ansible-test in place: no delegation '
                               '(--docker, --venv, another --python) from here.')

    for module in (sanity, sanity_import):
        module.create_sanity_virtualenv = create_sanity_virtualenv
        module.check_sanity_virtualenv_yaml = check_sanity_virtualenv_yaml
    delegation.delegate = delegate
    importlib.import_module('ansible_test._internal').delegate = delegate


def main() -> None:
    """Copy the collection, then run ansible-test sanity on the copy with this interpreter."""
    root = copy_collection()
    # Otherwise ansible-test walks up from the copy, finds the repository's .git and asks git, which
    # ignores .cache/; as the content root it looks for version control in the copy alone.
    os.environ['ANSIBLE_TEST_CONTENT_ROOT'] = root
    os.chdir(root)
    use_this_interpreter()

    from ansible_test._internal import main as ansible_test  # pylint: disable=import-outside-toplevel

    python = '%d.%d' % sys.version_info[:2]
    ansible_test(['ansible-test', 'sanity', '--python', python, '--python-interpreter', sys.executable] + sys.argv[1:])


if __name__ == '__main__':
    main()
