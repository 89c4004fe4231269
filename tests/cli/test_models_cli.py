from idresnet.cli.main import main


def test_models_table(capsys):
    assert main(["models", "--family", "cifar"]) == 0
    out = capsys.readouterr().out
    line = next(row for row in out.splitlines() if row.startswith("preact_resnet164 "))
    assert "bottleneck" in line and "18-18-18" in line and "1,703,258" in line
    assert "imagenet_" not in out


def test_models_markdown(capsys):
    assert main(["models", "--family", "imagenet", "--markdown"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("| name |") and "| imagenet_preact_resnet200 | imagenet | 200 |" in out
