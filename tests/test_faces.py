"""Face detection from what the opencv wheel ships, on a real portrait (scikit-image's astronaut)."""

from __future__ import annotations

import pytest
from PIL import Image
from skimage import data

from photobatch.daemon.app import App
from photobatch.daemon.samples import make_scene
from photobatch.plugins.builtin.face_detector import HaarFaceDetector


@pytest.fixture(scope="module")
def astronaut():
    return Image.fromarray(data.astronaut())


def test_the_face_is_found_where_it_is(astronaut):
    faces = HaarFaceDetector().detect(astronaut)
    assert len(faces) == 1
    face = faces[0]
    # Eileen Collins' face in the 512x512 photo: centre near (224, 115), about 90 px across.
    assert abs(face.x + face.w / 2 - 224) < 20 and abs(face.y + face.h / 2 - 115) < 20
    assert 70 < face.w < 130


@pytest.mark.parametrize("side", [1024, 4096])
def test_large_photos_are_detected_at_bounded_size_and_scaled_back(astronaut, side):
    face = HaarFaceDetector().detect(astronaut.resize((side, side)))[0]
    scale = side / 512
    assert abs((face.x + face.w / 2) / scale - 224) < 20 and abs((face.y + face.h / 2) / scale - 115) < 20


def test_no_face_in_landscapes():
    detector = HaarFaceDetector()
    for scene in ("landscape", "city"):
        assert detector.detect(make_scene(scene, (1200, 800), seed=1)) == []


def test_registered_as_a_plugin(tmp_path):
    app = App(catalog_path=tmp_path / "c.db")
    assert isinstance(app.face_detectors.get("opencv-haar"), HaarFaceDetector)
