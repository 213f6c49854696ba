"""The committed generated code must match the .proto files."""

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _check(proto_root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(proto_root / "generate.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_committed_generated_code_is_up_to_date():
    result = _check(ROOT / "proto")
    assert result.returncode == 0, result.stderr


def test_editing_a_proto_without_regenerating_is_detected(tmp_path):
    # A copy of the tree, so the real checkout is never touched.
    shutil.copytree(ROOT / "proto", tmp_path / "proto")
    shutil.copytree(ROOT / "services" / "contracts", tmp_path / "services" / "contracts")
    events = tmp_path / "proto" / "cctriage" / "events" / "v1" / "events.proto"
    events.write_text(
        events.read_text().replace(
            "message AgentJoined {\n  string agent_id = 1;\n",
            "message AgentJoined {\n  string agent_id = 1;\n  string team_id = 2;\n",
        )
    )
    result = _check(tmp_path / "proto")
    assert result.returncode == 1
    assert "events_pb2.py" in result.stderr
