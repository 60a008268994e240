import pytest
import torch
from safetensors.torch import load_file, save_file

from deepen.models import tensorio
from deepen.models.tensorio import CheckpointReader, StreamingWriter, write_tensors


def test_streaming_writer_round_trips_through_safetensors(tmp_path):
    tensors = {
        "a": torch.randn(3, 5),
        "b": torch.arange(7, dtype=torch.int64),
        "c": torch.randn(2, 2).to(torch.bfloat16),
    }
    write_tensors(tmp_path / "x.safetensors", tensors, metadata={"k": "v"})
    loaded = load_file(tmp_path / "x.safetensors")
    assert set(loaded) == set(tensors)
    for k in tensors:
        assert torch.equal(loaded[k], tensors[k])
    assert CheckpointReader(tmp_path / "x.safetensors").metadata() == {"k": "v"}


def test_write_parts_equals_whole_stack(tmp_path):
    stack = torch.randn(4, 3, 2)
    with StreamingWriter(tmp_path / "s.safetensors", [("stack", [4, 3, 2], torch.float32)]) as w:
        w.write_parts("stack", iter(stack))
    assert torch.equal(load_file(tmp_path / "s.safetensors")["stack"], stack)


@pytest.mark.parametrize("kernel_copy", [True, False])
def test_copy_bytes_carries_tensors_over_unchanged(tmp_path, monkeypatch, kernel_copy):
    if not kernel_copy:  # the fallback for file systems without copy_file_range
        monkeypatch.delattr(tensorio.os, "copy_file_range", raising=False)
    src = {"x": torch.randn(5, 3), "y": torch.arange(6, dtype=torch.int32), "z": torch.randn(4).to(torch.bfloat16)}
    save_file(src, tmp_path / "src.safetensors")
    reader = CheckpointReader(tmp_path / "src.safetensors")
    fresh = torch.randn(2, 2)
    specs = [("z", [4], torch.bfloat16), ("fresh", [2, 2], torch.float32), ("x", [5, 3], torch.float32)]
    with StreamingWriter(tmp_path / "out.safetensors", specs) as w:
        w.copy_bytes("z", *reader.byte_range("z"))
        w.write("fresh", fresh)
        w.copy_bytes("x", *reader.byte_range("x"))
    out = load_file(tmp_path / "out.safetensors")
    assert torch.equal(out["z"], src["z"]) and torch.equal(out["x"], src["x"]) and torch.equal(out["fresh"], fresh)
    with pytest.raises(ValueError, match="declared"):
        with StreamingWriter(tmp_path / "bad.safetensors", [("y", [5], torch.int32)]) as w:
            w.copy_bytes("y", *reader.byte_range("y"))
    assert not (tmp_path / "bad.safetensors").exists()


def test_get_block_reads_one_entry_of_the_first_axis(tmp_path):
    stack = torch.randn(4, 3, 2).to(torch.bfloat16)
    save_file({"other": torch.ones(5), "stack": stack}, tmp_path / "s.safetensors")
    reader = CheckpointReader(tmp_path / "s.safetensors")
    for layer in range(4):
        assert torch.equal(reader.get_block("stack", layer), stack[layer])
    with pytest.raises(IndexError, match="block 4"):
        reader.get_block("stack", 4)


def test_failed_write_leaves_no_file(tmp_path):
    path = tmp_path / "y.safetensors"
    with pytest.raises(ValueError, match="declared"):
        with StreamingWriter(path, [("a", [2], torch.float32)]) as w:
            w.write("a", torch.zeros(3))
    assert not path.exists()
    assert list(tmp_path.iterdir()) == []


def test_unfinished_write_leaves_no_file(tmp_path):
    path = tmp_path / "z.safetensors"
    w = StreamingWriter(path, [("a", [2], torch.float32), ("b", [2], torch.float32)])
    w.write("a", torch.zeros(2))
    with pytest.raises(RuntimeError, match="never written"):
        w.close()
    assert not path.exists()


def test_reader_reports_missing_shard(tmp_path):
    save_file({"x": torch.zeros(1)}, tmp_path / "model-00001-of-00002.safetensors")
    (tmp_path / "model.safetensors.index.json").write_text(
        '{"weight_map": {"x": "model-00001-of-00002.safetensors", "y": "model-00002-of-00002.safetensors"}}'
    )
    with pytest.raises(FileNotFoundError, match="model-00002-of-00002"):
        CheckpointReader(tmp_path)
