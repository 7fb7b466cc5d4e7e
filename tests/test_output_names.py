"""Output names claimed by photos written at once (the GPU path writes in threads)."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest

from photobatch.daemon.naming import OutputExists, claimed_output_path


def _recipe(collision: str):
    return SimpleNamespace(output=SimpleNamespace(collision=collision))


def _never_ours(path):
    return False


def test_a_name_being_written_is_taken_until_its_output_is_in_place(tmp_path):
    with claimed_output_path(tmp_path, "IMG_0001_x.jpg", _recipe("suffix"), _never_ours) as first:
        with claimed_output_path(tmp_path, "IMG_0001_x.jpg", _recipe("suffix"),
                                 _never_ours) as second:
            assert (first.name, second.name) == ("IMG_0001_x.jpg", "IMG_0001_x-1.jpg")
            with pytest.raises(OutputExists, match="collision = skip"):
                with claimed_output_path(tmp_path, "IMG_0001_x.jpg", _recipe("skip"),
                                         _never_ours):
                    pass
        first.write_bytes(b"written")
    # Written and released: now it is an existing file of another photo.
    with claimed_output_path(tmp_path, "IMG_0001_x.jpg", _recipe("suffix"), _never_ours) as third:
        assert third.name == "IMG_0001_x-1.jpg"
    # Given up without a file (a failed write): the name is free again.
    with claimed_output_path(tmp_path, "IMG_0002_x.jpg", _recipe("suffix"), _never_ours):
        pass
    with claimed_output_path(tmp_path, "IMG_0002_x.jpg", _recipe("suffix"), _never_ours) as again:
        assert again.name == "IMG_0002_x.jpg"


def test_overwrite_waits_for_the_write_in_flight(tmp_path):
    order = []
    held = threading.Event()

    def first():
        with claimed_output_path(tmp_path, "a.jpg", _recipe("overwrite"), _never_ours) as path:
            held.set()
            threading.Event().wait(0.3)
            order.append(("first", path.name))

    thread = threading.Thread(target=first)
    thread.start()
    held.wait(5)
    with claimed_output_path(tmp_path, "a.jpg", _recipe("overwrite"), _never_ours) as path:
        order.append(("second", path.name))
    thread.join()
    assert order == [("first", "a.jpg"), ("second", "a.jpg")]
