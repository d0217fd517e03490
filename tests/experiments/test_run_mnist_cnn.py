# SPDX-License-Identifier: MIT
"""run_mnist.py --protocol cnn / --model cnn: images in, a run folder with per-layer categories out."""
import json

from tests.common import load_script, one_thread

TINY = ["--dataset", "mnist5k", "--n-train", "200", "--n-test", "200", "--epochs", "1", "--batch-size", "100",
        "--n-eval-networks", "2", "--no-progress", "--device", "cpu"]


def test_cnn_protocol_and_plain_baseline(tmp_path, mnist_root):
    with one_thread():
        script = load_script("run_mnist")
        ensemble = script.main([*TINY, "--protocol", "cnn", "--data-root", str(mnist_root),
                                "--out", str(tmp_path / "cnn")])
        plain = script.main([*TINY, "--model", "cnn-plain", "--protocol", "cnn", "--data-root", str(mnist_root),
                             "--out", str(tmp_path / "plain")])
    assert ensemble["model"] == "cnn" and plain["model"] == "cnn-plain"
    assert set(ensemble["categories"]) == {"layer1", "layer2", "layer3", "layer4"}
    assert "categories" not in plain and plain["test_acc_sampled"]["std"] == 0.0
    config = json.loads((tmp_path / "cnn" / "config.json").read_text())
    assert config["model"]["kind"] == "cnn" and config["train"]["lr"] == 0.03
