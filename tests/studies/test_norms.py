import json

from gn_detection.cli import main
from gn_detection.studies.norms import format_table
from tests.helpers import TINY_CONFIG, make_sample, write_coco_dataset


def test_compare_norms_trains_each_variant_and_writes_table_json_and_plot(tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    json_file = write_coco_dataset(data, [make_sample(96, 128, 2, 3, seed=i) for i in range(4)])
    bn = tmp_path / "tiny_bn.yaml"
    bn.write_text(f'_BASE_: "{TINY_CONFIG}"\nMODEL:\n  RESNETS:\n    NORM: "BN"\n  FPN:\n    NORM: "BN"\n')
    output = tmp_path / "compare"
    opts = [
        "DATASETS.COCO_INSTANCES", f"[['cmp_set', '{json_file}', '{data}']]",
        "DATASETS.TRAIN", "('cmp_set',)", "DATASETS.TEST", "('cmp_set',)", "TEST.FROC", "True",
        "DATALOADER.NUM_WORKERS", "0", "SOLVER.MAX_ITER", "2", "SOLVER.STEPS", "()", "SOLVER.WARMUP_ITERS", "0",
    ]
    args = ["compare-norms", "--configs", f"GN={TINY_CONFIG}", f"BN={bn}", "--batches", "1", "2", "--output", str(output)]
    assert main(args + opts) == 0
    rows = json.loads((output / "comparison.json").read_text())
    assert [(r["norm"], r["batch"]) for r in rows] == [("GN", 1), ("GN", 2), ("BN", 1), ("BN", 2)]
    for row in rows:  # each row holds its own run's final evaluation
        run = json.loads((output / f"{row['norm']}_b{row['batch']}" / "inference" / "results.json").read_text())
        assert (row["box_ap"], row["mask_ap"], row["froc"]) == (
            run["bbox"]["AP"], run["segm"]["AP"], run["froc"]["mean_sensitivity"]
        )
    # the learning rate follows the batch: tiny's BASE_LR 0.01 is for IMS_PER_BATCH 2
    assert "comparison run GN at batch 1: lr 0.005" in (output / "log.txt").read_text()
    assert (output / "comparison.png").stat().st_size > 1000
    assert (output / "comparison.md").read_text().strip() == format_table(rows)
    assert "| BN | 2 |" in capsys.readouterr().out
