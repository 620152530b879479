"""Real image data for the image audit: image folders and ``datasets`` saved to disk,
written here (nothing is downloaded); corrupt files, class names and their mapping."""

import numpy as np
import pytest
from PIL import Image

from fadejax.audits.image.data import DataError, ImageDataset, load_folder, load_hf_dataset, map_classes


def _picture(seed: int, size=(20, 26)) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray((rng.random((*size, 3)) * 255).astype(np.uint8))


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "images"
    for c, name in enumerate(["cat", "dog", "fox"]):
        (root / name).mkdir(parents=True)
        for i in range(3):
            _picture(10 * c + i, size=(20 + i, 26)).save(root / name / f"{i}.{'png' if i % 2 else 'jpg'}")
    (root / "dog" / "notes.txt").write_text("not an image, and not read")
    return root


def test_an_image_folder_is_read_in_class_order_resized_and_limited_per_class(folder):
    data = load_folder(folder, size=16)
    assert data.class_names == ("cat", "dog", "fox") and data.num_classes == 3
    assert data.images.shape == (9, 16, 16, 3) and data.images.dtype == np.float32 and 0 <= data.images.min() <= data.images.max() <= 1
    assert data.labels.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert load_folder(folder, size=16, per_class=2).labels.tolist() == [0, 0, 1, 1, 2, 2]


def test_a_corrupt_image_is_named_or_skipped_and_counted(folder):
    (folder / "cat" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not the rest of a png")
    with pytest.raises(DataError, match=r"broken\.png is not a readable image.*skip_unreadable"):
        load_folder(folder, size=16)
    data = load_folder(folder, size=16, skip_unreadable=True)
    assert len(data) == 9 and [p.endswith("broken.png") for p in data.skipped] == [True]


def test_a_saved_dataset_is_read_from_its_columns_with_its_class_names(tmp_path):
    import datasets

    features = datasets.Features({"picture": datasets.Image(), "kind": datasets.ClassLabel(names=["cat", "dog"])})
    table = datasets.Dataset.from_dict({"picture": [_picture(i) for i in range(5)], "kind": [0, 1, 1, 0, 1]}, features=features)
    table.save_to_disk(tmp_path / "one")
    data = load_hf_dataset(tmp_path / "one", 16, "picture", "kind", per_class=2)
    assert data.class_names == ("cat", "dog") and data.labels.tolist() == [0, 1, 1, 0] and data.images.shape == (4, 16, 16, 3)
    with pytest.raises(DataError, match=r"no column \['image'\]; its columns are \['picture', 'kind'\]"):
        load_hf_dataset(tmp_path / "one", 16, "image", "kind")
    datasets.DatasetDict({"train": table, "test": table}).save_to_disk(tmp_path / "two")
    assert len(load_hf_dataset(tmp_path / "two", 16, "picture", "kind", split="test")) == 5
    with pytest.raises(DataError, match=r"splits \['test', 'train'\]; choose one with data.split"):
        load_hf_dataset(tmp_path / "two", 16, "picture", "kind")
    with pytest.raises(DataError, match="not a data set saved with save_to_disk"):
        load_hf_dataset(tmp_path, 16, "picture", "kind")


def test_classes_map_onto_the_models_by_name_and_an_unknown_one_is_named():
    data = ImageDataset(np.zeros((3, 8, 8, 3), np.float32), np.asarray([0, 1, 1], np.int32), 2, "d", ("Dog ", "cat"))
    mapped = map_classes(data, ["bird", "cat", "dog"], "name")
    assert mapped.labels.tolist() == [2, 1, 1] and mapped.num_classes == 3  # names compared without case or spaces
    assert map_classes(data, ["bird", "cat", "dog"], "index").labels.tolist() == [0, 1, 1]
    with pytest.raises(DataError, match=r"data classes \['Dog '\] are not classes of the model"):
        map_classes(data, ["bird", "cat"], "name")


def test_the_new_data_settings_enter_the_landscape_key_only_when_set():
    from fadejax.engine.config import parse_config
    from fadejax.engine.ground_truth import landscape_key

    default = landscape_key(parse_config({}))  # the shipped recordings' key stays valid (tests/test_shipped_recordings.py)
    assert landscape_key(parse_config({"data": {"class_map": "name"}})) == default
    assert landscape_key(parse_config({"data": {"per_class": 5}})) != default
