"""UCF101's official split files and the folder-per-class split (egoindex.media.labelled)."""

from __future__ import annotations

from pathlib import Path

import pytest

from egoindex.errors import ClassifyError
from egoindex.media.labelled import (load_video_set, read_class_index, read_split_list, scan_ucf101, split_per_class,
                                     ucf_group, val_groups)

CLASSES = ("ApplyEyeMakeup", "ApplyLipstick", "HandstandPushups")


def _ucf(root: Path, groups: range = range(1, 11), clips: int = 2) -> Path:
    """A UCF101-shaped tree (empty .avi files: parsing never decodes) with split 1: test groups 1-3.
    Like the real archive, classInd says HandstandPushups while folder and files say HandStandPushups."""
    lists = root / "ucfTrainTestlist"
    lists.mkdir(parents=True)
    (lists / "classInd.txt").write_text("".join(f"{i} {c}\r\n" for i, c in enumerate(CLASSES, 1)), encoding="utf-8")
    train, test = [], []
    for i, c in enumerate(CLASSES, 1):
        folder = "HandStandPushups" if c == "HandstandPushups" else c
        for g in groups:
            for k in range(1, clips + 1):
                rel = f"{folder}/v_{folder}_g{g:02d}_c{k:02d}.avi"
                (root / rel).parent.mkdir(parents=True, exist_ok=True)
                (root / rel).write_bytes(b"")
                (test if g <= 3 else train).append(rel if g <= 3 else f"{rel} {i}")
    (lists / "trainlist01.txt").write_text("\n".join(train) + "\n", encoding="utf-8")
    (lists / "testlist01.txt").write_text("\n".join(test) + "\n", encoding="utf-8")
    return root


def test_class_index_is_one_based_in_file_order(tmp_path: Path) -> None:
    root = _ucf(tmp_path)
    assert read_class_index(root / "ucfTrainTestlist" / "classInd.txt") == list(CLASSES)
    bad = tmp_path / "zero.txt"
    bad.write_text("0 ApplyEyeMakeup\n1 ApplyLipstick\n", encoding="utf-8")
    with pytest.raises(ClassifyError, match="1-based"):
        read_class_index(bad)


def test_official_names_parse_with_labels_and_groups(tmp_path: Path) -> None:
    root = _ucf(tmp_path)
    rows = read_split_list(root / "ucfTrainTestlist" / "trainlist01.txt", list(CLASSES), labelled=True)
    assert rows[0] == ("ApplyEyeMakeup/v_ApplyEyeMakeup_g04_c01.avi", "ApplyEyeMakeup")
    # label 3 is HandstandPushups, whose folder is spelt HandStandPushups: matched case-insensitively
    assert ("HandStandPushups/v_HandStandPushups_g04_c01.avi", "HandstandPushups") in rows
    assert ucf_group("ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi") == "ApplyEyeMakeup_g08"
    tests = read_split_list(root / "ucfTrainTestlist" / "testlist01.txt", list(CLASSES), labelled=False)
    assert {c for _, c in tests} == set(CLASSES) and len(tests) == 3 * 3 * 2


def test_a_label_that_disagrees_with_its_folder_is_refused(tmp_path: Path) -> None:
    root = _ucf(tmp_path)
    f = root / "ucfTrainTestlist" / "trainlist01.txt"
    f.write_text("ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 2\n", encoding="utf-8")
    with pytest.raises(ClassifyError, match="index 2 is 'ApplyLipstick'"):
        read_split_list(f, list(CLASSES), labelled=True)
    f.write_text("ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 0\n", encoding="utf-8")
    with pytest.raises(ClassifyError, match=r"not in 1\.\.3 \(1-based\)"):
        read_split_list(f, list(CLASSES), labelled=True)


def test_split_keeps_official_test_and_holds_out_whole_groups_for_val(tmp_path: Path) -> None:
    vs = scan_ucf101(_ucf(tmp_path), split=1, val_fraction=0.3, seed=0)
    assert vs.classes == list(CLASSES) and vs.source == "ucf101 split 1"
    groups = {p: {ucf_group(v.rel).rsplit("_g", 1)[1] for v in vs.part(p)} for p in ("train", "val", "test")}
    assert groups["test"] == {"01", "02", "03"}
    assert groups["val"] and not groups["val"] & groups["train"]  # no group both trains and validates
    assert groups["val"] | groups["train"] == {f"{g:02d}" for g in range(4, 11)}
    assert len(vs.part("val")) == len(groups["val"]) * 3 * 2  # every class, every clip of the held-out groups
    assert load_video_set(tmp_path).source == "ucf101 split 1"  # found beside the class folders


def test_val_groups_never_takes_every_group() -> None:
    assert val_groups(["A_g01", "A_g02"], 0.9, seed=0) in ({"A_g01"}, {"A_g02"})
    assert val_groups(["A_g01", "B_g01"], 0.5, seed=0) == set()


def test_missing_videos_and_split_files_say_what_is_missing(tmp_path: Path) -> None:
    root = _ucf(tmp_path)
    (root / "ApplyEyeMakeup" / "v_ApplyEyeMakeup_g05_c01.avi").unlink()
    with pytest.raises(ClassifyError, match="v_ApplyEyeMakeup_g05_c01.avi"):
        scan_ucf101(root)
    with pytest.raises(ClassifyError, match="trainlist02.txt"):
        scan_ucf101(root, split=2)


def test_folder_split_is_the_probes_split(tmp_path: Path) -> None:
    for c in ("a", "b"):
        for i in range(5):
            (tmp_path / c).mkdir(exist_ok=True)
            (tmp_path / c / f"{i}.mp4").write_bytes(b"")
    vs = load_video_set(tmp_path, fractions=(0.6, 0.2, 0.2), seed=3)
    assert vs.source == "folders"
    assert vs.split == list(split_per_class([v.label for v in vs.videos], (0.6, 0.2, 0.2), 3))
    assert {p: len(vs.part(p)) for p in ("train", "val", "test")} == {"train": 6, "val": 2, "test": 2}
