"""facecast batch without Ray: the jobs file, rendering, failures with their messages, retries, resumption."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from facecast.batch import run as batch_run
from facecast.batch.jobs import read_jobs
from facecast.cli import main
from facecast.demo import demo_portrait
from facecast.errors import InvalidArgument


def write_jobs(folder: Path, rows: list[str], header: str = "name,avatar,text,audio,fps") -> Path:
    shutil.copy(demo_portrait(), folder / "face.jpg")
    (folder / "notes.txt").write_text("not an image")
    path = folder / "jobs.csv"
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


@pytest.mark.parametrize("header, rows, message", [
    ("name,avatar,text", ["a,face.jpg,Hi.", "a,face.jpg,Ho."], "name 'a' is also on line 2"),
    ("name,avatar,text,audio", ["a,face.jpg,Hi.,x.wav"], "exactly one of 'audio' and 'text'"),
    ("name,avatar,text", [",,Hi."], "'avatar' is empty"),
    ("name,avatar,words", ["a,face.jpg,Hi."], "unknown column 'words'"),
    ("name,avatar,text,fps", ["a,face.jpg,Hi.,fast"], "fps='fast' is not a whole number"),
    ("name,avatar,text", ["../up,face.jpg,Hi."], "name '../up' must be letters"),
    ("name,avatar,text", [], "no jobs"),
])
def test_a_bad_jobs_file_names_the_line_and_the_problem(tmp_path, header, rows, message):
    with pytest.raises(InvalidArgument, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        read_jobs(write_jobs(tmp_path, rows, header))


def test_paths_are_relative_to_the_csv_and_names_default_to_the_line(tmp_path):
    jobs = read_jobs(write_jobs(tmp_path, [",face.jpg,Hello.,,12"]))
    assert jobs[0].name == "row-0002" and jobs[0].avatar == str(tmp_path / "face.jpg") and jobs[0].fps == 12


@pytest.mark.slow
def test_renders_reports_failures_and_resumes(tmp_path, capsys):
    jobs = write_jobs(tmp_path, ["one,face.jpg,Hi.,,10", "two,face.jpg,Ho.,,10", "bad,notes.txt,Hi.,,10"])
    out = tmp_path / "out"
    assert main(["batch", str(jobs), "--out", str(out), "-q"]) == 1
    printed = capsys.readouterr().out
    assert "2 rendered, 0 already done, 1 failed" in printed
    assert "line 4 (bad):" in printed and "notes.txt" in printed  # the job's own message
    assert sorted(p.name for p in out.iterdir()) == ["one.mp4", "two.mp4"]
    first = (out / "one.mp4").stat().st_mtime_ns

    assert main(["batch", str(jobs), "--out", str(out), "-q"]) == 1  # a re-run skips what is done
    assert "0 rendered, 2 already done, 1 failed" in capsys.readouterr().out
    assert (out / "one.mp4").stat().st_mtime_ns == first


def test_a_crashing_job_is_retried_and_input_errors_are_not(tmp_path, monkeypatch):
    jobs = read_jobs(write_jobs(tmp_path, ["flaky,face.jpg,Hi.", "bad,face.jpg,Ho.", "dead,face.jpg,Hu."],
                                "name,avatar,text"))
    calls: dict[str, int] = {}

    def fake_render(job, out_dir):
        calls[job.name] = calls.get(job.name, 0) + 1
        if job.name == "bad":
            raise InvalidArgument("no face found")
        if job.name == "dead" or calls[job.name] == 1:
            raise RuntimeError("worker crashed")
        (Path(out_dir) / f"{job.name}.mp4").write_bytes(b"mp4")
        return {}

    monkeypatch.setattr(batch_run, "render_job", fake_render)
    summary = batch_run.run_local(jobs, tmp_path, retries=2)
    assert summary.done == ["flaky"] and calls == {"flaky": 2, "bad": 1, "dead": 3}
    assert summary.failed == {"bad": "no face found", "dead": "RuntimeError: worker crashed (after 3 attempts)"}
