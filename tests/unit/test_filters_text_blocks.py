"""The marked block of a shared file, as blockinfile keeps it."""

from ansible_collections.nasai.stack.plugins.filter.text_blocks import with_block

MARK = "# {mark} nasai.stack proxy"
ENV = 'PATH="/usr/bin"\n# BEGIN nasai.stack proxy\nA=1\n# END nasai.stack proxy\nLANG=C\n'


def test_the_block_is_replaced_in_place_and_other_lines_stay():
    assert with_block(ENV, "A=2\nB=3\n", MARK) == (
        'PATH="/usr/bin"\n# BEGIN nasai.stack proxy\nA=2\nB=3\n# END nasai.stack proxy\nLANG=C\n')
    assert with_block(ENV, "A=1", MARK) == ENV


def test_a_missing_block_is_added_at_the_end_and_removed_again():
    added = with_block('PATH="/usr/bin"', "A=1\n", MARK)
    assert added == 'PATH="/usr/bin"\n# BEGIN nasai.stack proxy\nA=1\n# END nasai.stack proxy\n'
    assert with_block(added, None, MARK) == 'PATH="/usr/bin"\n'
    assert with_block(None, "A=1", MARK) == "# BEGIN nasai.stack proxy\nA=1\n# END nasai.stack proxy\n"
    assert with_block('PATH="/usr/bin"\n', "", MARK) == 'PATH="/usr/bin"\n'
    assert with_block(None, None, MARK) == ""
