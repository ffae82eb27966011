"""SQLite transactions take turns on an flock beside the database (``store/sqlite_turns.py``),
so a waiting transaction starts when the last one ends instead of in SQLite's sleeping busy
handler. These check the turn is really shared by processes and freed by a dying one."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from backend.store import Store
from backend.store.migrate import upgrade

HOLD_THE_TURN = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
print("held", flush=True)
sys.stdin.readline()
"""


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store(f"sqlite:///{tmp_path / 'genhook.db'}")
    upgrade(store.engine)
    yield store
    store.dispose()


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the database's turn until told to let go (or killed)."""
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD_THE_TURN, str(tmp_path / "genhook.db.turns")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stdout.readline().strip() == "held"
    yield process
    process.kill()
    process.wait()


def start_transaction(store: Store) -> threading.Event:
    entered = threading.Event()

    def run() -> None:
        with store.begin() as conn:
            conn.execute(sa.text("SELECT 1"))
            entered.set()

    threading.Thread(target=run, daemon=True).start()
    return entered


def test_a_transaction_waits_for_the_turn_another_process_holds(
    store: Store, holder: subprocess.Popen[str]
) -> None:
    entered = start_transaction(store)
    # While the other process holds the turn, no transaction starts here
    assert not entered.wait(0.5)
    # And the moment it lets go, one does
    assert holder.stdin is not None
    holder.stdin.write("go\n")
    holder.stdin.flush()
    assert entered.wait(10)


def test_a_process_that_dies_holding_the_turn_frees_it(
    store: Store, holder: subprocess.Popen[str]
) -> None:
    entered = start_transaction(store)
    assert not entered.wait(0.5)
    holder.kill()
    assert entered.wait(10)


def test_threads_of_one_process_take_turns(store: Store) -> None:
    inside = threading.Event()
    leave = threading.Event()

    def hold() -> None:
        with store.begin():
            inside.set()
            leave.wait(10)

    holding = threading.Thread(target=hold, daemon=True)
    holding.start()
    assert inside.wait(10)
    entered = start_transaction(store)
    assert not entered.wait(0.5)
    leave.set()
    assert entered.wait(10)
    holding.join(10)
