"""One GETBULK step of a walk (pure): subtree ends, endOfMibView, exceptions, loops."""

from __future__ import annotations

import pytest

from collectors.snmp.ber import VarBindException
from collectors.snmp.errors import NonIncreasingOidError
from collectors.snmp.walk import advance, in_subtree

ROOT = (1, 3, 6, 1, 2, 1, 2, 2, 1, 2)


def test_a_full_answer_continues_from_its_last_oid() -> None:
    kept, following = advance(ROOT, ROOT, [(ROOT + (1,), b"lo"), (ROOT + (2,), b"eth0")])
    assert kept == [(ROOT + (1,), b"lo"), (ROOT + (2,), b"eth0")]
    assert following == ROOT + (2,)


def test_leaving_the_subtree_ends_the_walk() -> None:
    kept, following = advance(ROOT, ROOT + (1,), [(ROOT + (2,), b"eth0"), ((1, 3, 6, 1, 2, 1, 2, 2, 1, 3, 1), 24)])
    assert (kept, following) == ([(ROOT + (2,), b"eth0")], None)


def test_end_of_mib_view_in_the_middle_ends_the_walk() -> None:
    kept, following = advance(ROOT, ROOT, [(ROOT + (1,), b"lo"), (ROOT + (2,), VarBindException.END_OF_MIB_VIEW),
                                           (ROOT + (3,), b"never")])
    assert (kept, following) == ([(ROOT + (1,), b"lo")], None)


def test_no_such_instance_inside_a_walk_is_skipped_not_kept() -> None:
    kept, following = advance(ROOT, ROOT, [(ROOT + (1,), VarBindException.NO_SUCH_INSTANCE), (ROOT + (2,), b"eth0")])
    assert (kept, following) == ([(ROOT + (2,), b"eth0")], ROOT + (2,))


def test_an_empty_answer_ends_the_walk() -> None:
    assert advance(ROOT, ROOT + (5,), []) == ([], None)


@pytest.mark.parametrize("answer", [
    [(ROOT + (5,), b"same")],                          # the OID asked for, again
    [(ROOT + (4,), b"back")],                          # an earlier one
    [(ROOT + (6,), b"a"), (ROOT + (6,), b"again")],    # repeated inside one answer
])
def test_non_increasing_oids_are_refused(answer: list) -> None:
    with pytest.raises(NonIncreasingOidError, match="not increasing"):
        advance(ROOT, ROOT + (5,), answer)


def test_in_subtree_is_strict() -> None:
    assert in_subtree(ROOT + (1,), ROOT)
    assert not in_subtree(ROOT, ROOT)
    assert not in_subtree((1, 3, 6, 1, 2, 1, 2, 2, 1, 20, 1), ROOT)
