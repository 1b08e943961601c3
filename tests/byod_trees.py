"""Source trees for the bring-your-own-data tests, made from the synthetic benchmark's images and masks.

``mvtec_tree`` lays a synthetic dataset out as MVTec-AD, ``visa_tree`` as VisA (split file and
per-object annotation file), ``folders_tree`` as good/ and bad/ folders, and ``hub_repo`` as a
Hugging Face dataset repository of an MMAD-format benchmark (mmad.json + archives).
"""

from __future__ import annotations

import csv
import json
import shutil
import zipfile
from pathlib import Path


def defect_images(syn: Path, dataset: str, category: str) -> dict[str, list[Path]]:
    """Defect key -> its test images in a synthetic build."""
    test = syn / dataset / category / "test"
    return {d.name: sorted(d.glob("*.png")) for d in sorted(test.iterdir()) if d.name != "good"}


def mvtec_tree(syn: Path, out: Path, dataset: str = "SynthObject") -> Path:
    """The synthetic dataset in the MVTec-AD layout (it already is one): a copy."""
    shutil.copytree(syn / dataset, out)
    return out


def visa_tree(syn: Path, out: Path, dataset: str = "SynthObject") -> Path:
    """VisA's layout: OBJECT/Data/Images/{Normal,Anomaly}, OBJECT/Data/Masks/Anomaly, split_csv/1cls.csv and
    OBJECT/image_anno.csv with the defect names (spaces instead of underscores, as VisA writes them)."""
    rows = []
    for cat_dir in sorted((syn / dataset).iterdir()):
        obj = cat_dir.name
        anno = []
        normal_dir = out / obj / "Data" / "Images" / "Normal"
        normal_dir.mkdir(parents=True)
        n = 0
        for split, folder in (("train", cat_dir / "train" / "good"), ("test", cat_dir / "test" / "good")):
            for img in sorted(folder.glob("*.png")):
                rel = f"{obj}/Data/Images/Normal/{n:04d}.png"
                shutil.copyfile(img, out / rel)
                rows.append({"object": obj, "split": split, "label": "normal", "image": rel, "mask": ""})
                anno.append({"image": rel, "label": "normal", "mask": ""})
                n += 1
        (out / obj / "Data" / "Images" / "Anomaly").mkdir(parents=True)
        (out / obj / "Data" / "Masks" / "Anomaly").mkdir(parents=True)
        m = 0
        for defect, images in defect_images(syn, dataset, obj).items():
            for img in images:
                rel = f"{obj}/Data/Images/Anomaly/{m:03d}.png"
                mask_rel = f"{obj}/Data/Masks/Anomaly/{m:03d}.png"
                shutil.copyfile(img, out / rel)
                shutil.copyfile(cat_dir / "ground_truth" / defect / f"{img.stem}_mask.png", out / mask_rel)
                rows.append({"object": obj, "split": "test", "label": "anomaly", "image": rel, "mask": mask_rel})
                anno.append({"image": rel, "label": defect.replace("_", " "), "mask": mask_rel})
                m += 1
        _write_csv(out / obj / "image_anno.csv", anno, ("image", "label", "mask"))
    _write_csv(out / "split_csv" / "1cls.csv", rows, ("object", "split", "label", "image", "mask"))
    return out


def folders_tree(syn: Path, out: Path, dataset: str = "SynthObject", without_masks: tuple[str, ...] = ()) -> Path:
    """PRODUCT/good (templates and normal test images together), PRODUCT/bad/DEFECT, PRODUCT/masks/DEFECT;
    defects named in ``without_masks`` get no masks."""
    for cat_dir in sorted((syn / dataset).iterdir()):
        product = out / cat_dir.name
        (product / "good").mkdir(parents=True)
        for i, img in enumerate(sorted((cat_dir / "train" / "good").glob("*.png"))
                                + sorted((cat_dir / "test" / "good").glob("*.png"))):
            shutil.copyfile(img, product / "good" / f"img{i:03d}.png")
        for defect, images in defect_images(syn, dataset, cat_dir.name).items():
            (product / "bad" / defect).mkdir(parents=True)
            for img in images:
                shutil.copyfile(img, product / "bad" / defect / img.name)
                if defect not in without_masks:
                    (product / "masks" / defect).mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(cat_dir / "ground_truth" / defect / f"{img.stem}_mask.png",
                                    product / "masks" / defect / img.name)
    return out


def _write_csv(path: Path, rows: list[dict[str, str]], columns: tuple[str, ...]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(columns))
        writer.writeheader()
        writer.writerows(rows)


def hub_repo(syn: Path, out: Path, style: str = "per-dataset") -> Path:
    """An MMAD-format benchmark laid out as its hub repository: mmad.json, domain_knowledge.json, and the
    images as one archive per dataset ("per-dataset", the first without a top folder), as ALL_DATA.zip
    ("all-data", with an ALL_DATA/ top folder), or as plain folders ("folders")."""
    out.mkdir(parents=True)
    shutil.copyfile(syn / "mmad.json", out / "mmad.json")
    shutil.copyfile(syn / "domain_knowledge.json", out / "domain_knowledge.json")
    (out / "README.md").write_text("---\nlicense: cc-by-nc-sa-4.0\n---\n", encoding="utf-8")
    datasets = sorted(p.name for p in syn.iterdir() if p.is_dir())
    if style == "folders":
        for name in datasets:
            shutil.copytree(syn / name, out / name)
    elif style == "all-data":
        with zipfile.ZipFile(out / "ALL_DATA.zip", "w") as zf:
            for name in datasets:
                for p in sorted((syn / name).rglob("*.png")):
                    zf.write(p, "ALL_DATA/" + p.relative_to(syn).as_posix())
    else:
        for i, name in enumerate(datasets):
            with zipfile.ZipFile(out / f"{name}.zip", "w") as zf:
                base = syn / name if i == 0 else syn  # the first archive holds the category folders directly
                for p in sorted((syn / name).rglob("*.png")):
                    zf.write(p, p.relative_to(base).as_posix())
    return out


def counts(json_path: Path) -> tuple[int, int]:
    """(questions, images) of an mmad.json."""
    data = json.loads(json_path.read_text(encoding="utf-8"))
    return sum(len(v["conversation"]) for v in data.values()), len(data)
