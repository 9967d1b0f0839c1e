"""prompt.txt and job.toml: what a user writes becomes the messages and overrides the job sends."""

from __future__ import annotations

import os
import tracemalloc
from pathlib import Path

import pytest

from nemowatch.api.formats import MAX_MESSAGE_BYTES
from nemowatch.daemon.prompt import (
    MAX_PROMPT_FILE_BYTES,
    JobOptions,
    load_job_prompt,
    read_options,
    read_prompt,
)
from nemowatch.errors import UserError


def write(path: Path, data: str | bytes) -> Path:
    if isinstance(data, str):
        data = data.encode("utf-8")
    path.write_bytes(data)
    return path


def test_a_bom_is_not_part_of_the_first_message(tmp_path: Path) -> None:
    path = write(tmp_path / "prompt.txt", b"\xef\xbb\xbfA summer montage\n")
    assert read_prompt(path) == ["A summer montage"]


def test_dash_lines_split_the_prompt_into_messages_in_order(tmp_path: Path) -> None:
    text = "Make a montage\r\n---\r\nAdd a warm grade\n  ---  \nAdd the title Summer\n"
    path = write(tmp_path / "prompt.txt", text)
    assert read_prompt(path) == ["Make a montage", "Add a warm grade", "Add the title Summer"]


def test_dashes_inside_a_line_do_not_split(tmp_path: Path) -> None:
    path = write(tmp_path / "prompt.txt", "Cut --- then fade\n----\nmore")
    assert read_prompt(path) == ["Cut --- then fade\n----\nmore"]


def test_blank_parts_between_separators_are_dropped(tmp_path: Path) -> None:
    path = write(tmp_path / "prompt.txt", "one\n---\n\n---\ntwo\n---\n")
    assert read_prompt(path) == ["one", "two"]


@pytest.mark.parametrize("text", ["", "   \n\n", "---\n---\n", "\ufeff \n --- \n"])
def test_an_empty_prompt_fails_with_an_example_of_what_to_write(tmp_path: Path, text: str) -> None:
    path = write(tmp_path / "prompt.txt", text)
    with pytest.raises(UserError) as info:
        read_prompt(path)
    assert str(info.value).startswith("prompt.txt is empty; write what the video should be, e.g.")


def test_a_prompt_that_is_not_utf8_says_to_save_it_as_utf8(tmp_path: Path) -> None:
    path = write(tmp_path / "prompt.txt", "Été à Paris".encode("latin-1"))
    with pytest.raises(UserError) as info:
        read_prompt(path)
    assert "prompt.txt is not UTF-8 text" in str(info.value)
    assert "save it as UTF-8" in str(info.value)


def test_job_toml_overrides_are_read(tmp_path: Path) -> None:
    write(tmp_path / "job.toml", 'language = "fr"\naspect = "9:16"\nduration_s = 20\nexport = "each"\n')
    assert read_options(tmp_path / "job.toml") == JobOptions(
        language="fr", aspect="9:16", duration_s=20.0, export="each"
    )


def test_without_job_toml_one_video_is_exported(tmp_path: Path) -> None:
    assert read_options(tmp_path / "job.toml") == JobOptions(export="last")


def test_aspect_and_duration_are_appended_to_the_first_message_only(tmp_path: Path) -> None:
    write(tmp_path / "prompt.txt", "A montage\n---\nWarmer colours")
    write(tmp_path / "job.toml", 'aspect = "9:16"\nduration_s = 20\n')
    job = load_job_prompt(tmp_path / "prompt.txt", tmp_path / "job.toml")
    assert job.messages == ["A montage\n\nAspect 9:16. Duration 20 seconds.", "Warmer colours"]


def test_a_job_without_job_toml_sends_the_prompt_unchanged(tmp_path: Path) -> None:
    write(tmp_path / "sunset.txt", "A sunset over the sea")
    job = load_job_prompt(tmp_path / "sunset.txt", tmp_path / "job.toml")
    assert job.messages == ["A sunset over the sea"]
    assert job.options == JobOptions()


@pytest.mark.parametrize(
    ("line", "key"),
    [
        ('aspect = "4:3"', "aspect"),
        ('duration_s = "twenty"', "duration_s"),
        ("duration_s = 0", "duration_s"),
        ('export = "all"', "export"),
        ("language = 3", "language"),
        ('colour = "red"', "colour"),
    ],
)
def test_a_bad_job_toml_names_the_key(tmp_path: Path, line: str, key: str) -> None:
    write(tmp_path / "job.toml", line + "\n")
    with pytest.raises(UserError) as info:
        read_options(tmp_path / "job.toml")
    assert f"`{key}`" in str(info.value)
    assert "\n" not in str(info.value)


def test_job_toml_that_is_not_toml_says_how_to_write_it(tmp_path: Path) -> None:
    write(tmp_path / "job.toml", "aspect: 9:16\n")
    with pytest.raises(UserError) as info:
        read_options(tmp_path / "job.toml")
    assert "job.toml is not valid TOML" in str(info.value)
    assert 'aspect = "9:16"' in str(info.value)


def _problem(path: Path) -> str:
    with pytest.raises(UserError) as caught:
        read_prompt(path)
    assert caught.value.code == "bad_prompt"
    return str(caught.value)


def test_a_prompt_txt_that_is_no_readable_text_file_says_exactly_that(tmp_path: Path) -> None:
    job = tmp_path / "job"
    job.mkdir()
    (job / "prompt.txt").mkdir()
    assert _problem(job / "prompt.txt") == (
        "prompt.txt is a folder, not a text file; replace the folder prompt.txt with a text file saying"
        " what the video should be."
    )
    (job / "prompt.txt").rmdir()
    write(tmp_path / "elsewhere.txt", "a film about /etc/shadow")
    (job / "prompt.txt").symlink_to(tmp_path / "elsewhere.txt")
    assert _problem(job / "prompt.txt").startswith(
        "prompt.txt is a link to a file outside the job folder, and such links are never followed;"
        " copy the text itself into prompt.txt"
    )
    (job / "prompt.txt").unlink()
    (job / "prompt.txt").symlink_to("gone.txt")
    assert _problem(job / "prompt.txt").startswith("prompt.txt is a link to a file that does not exist;")
    (job / "prompt.txt").unlink()
    os.mkfifo(job / "prompt.txt")  # never opened: that would block the daemon
    assert _problem(job / "prompt.txt").startswith("prompt.txt is not a regular file;")
    (job / "prompt.txt").unlink()
    write(job / "words.txt", "a short film")
    (job / "prompt.txt").symlink_to("words.txt")  # a link inside the job is fine
    assert read_prompt(job / "prompt.txt") == ["a short film"]


def test_an_unreadable_prompt_txt_says_so_and_how_to_fix_it(tmp_path: Path) -> None:
    path = write(tmp_path / "prompt.txt", "a short film")
    path.chmod(0)
    if os.geteuid() == 0:
        # Root reads any file whatever its mode, so for a daemon run as root the file is simply read.
        assert read_prompt(path) == ["a short film"]
        return
    assert _problem(path) == (
        "prompt.txt cannot be read (permission denied); make it readable for the user nemowatch"
        " runs as (chmod a+r prompt.txt)."
    )


# -- size limits: a prompt costs bounded work whatever it holds ------------------------------------

TOO_LONG_HINT = "shorten prompt.txt or split it into messages with a line `---` between them."


def test_a_message_of_exactly_64_kb_is_sent(tmp_path: Path) -> None:
    message = "a" * (MAX_MESSAGE_BYTES - 3) + "中"  # the limit in UTF-8 bytes, not characters
    write(tmp_path / "prompt.txt", message)
    assert load_job_prompt(tmp_path / "prompt.txt").messages == [message]


def test_a_message_over_64_kb_fails_saying_its_size_and_how_to_split_it(tmp_path: Path) -> None:
    write(tmp_path / "prompt.txt", "中" * 23_000)  # 69 000 bytes: under 64 000 characters
    with pytest.raises(UserError) as info:
        load_job_prompt(tmp_path / "prompt.txt")
    assert str(info.value) == f"prompt too long: 69 kB, at most 64 kB; {TOO_LONG_HINT}"
    assert info.value.code == "prompt_too_long"


def test_the_long_message_is_named_when_the_prompt_has_several(tmp_path: Path) -> None:
    write(tmp_path / "prompt.txt", "A montage\n---\n" + "x" * 64_001 + "\n---\nWarmer colours")
    with pytest.raises(UserError) as info:
        load_job_prompt(tmp_path / "prompt.txt")
    assert str(info.value) == f"prompt too long: 65 kB, at most 64 kB (message 2 of 3); {TOO_LONG_HINT}"


def test_the_job_toml_sentence_counts_towards_the_first_message(tmp_path: Path) -> None:
    write(tmp_path / "prompt.txt", "a" * MAX_MESSAGE_BYTES)
    write(tmp_path / "job.toml", 'aspect = "9:16"\n')
    with pytest.raises(UserError) as info:
        load_job_prompt(tmp_path / "prompt.txt", tmp_path / "job.toml")
    assert str(info.value).startswith("prompt too long: 65 kB, at most 64 kB;")


def test_several_messages_within_the_limit_may_add_up_to_more_than_it(tmp_path: Path) -> None:
    messages = ["a" * MAX_MESSAGE_BYTES, "b" * MAX_MESSAGE_BYTES]
    write(tmp_path / "prompt.txt", "\n---\n".join(messages))
    assert load_job_prompt(tmp_path / "prompt.txt").messages == messages


def test_a_1_gb_prompt_fails_naming_its_size_without_being_read_into_memory(tmp_path: Path) -> None:
    path = tmp_path / "prompt.txt"
    with path.open("wb") as file:
        file.truncate(1000**3)  # sparse: 1 GB of size, no disk blocks
    tracemalloc.start()
    try:
        with pytest.raises(UserError) as info:
            load_job_prompt(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert str(info.value).startswith("prompt too long: prompt.txt is 1 GB, at most 1 MB;")
    assert "each message (lines `---` separate them) may be up to 64 kB" in str(info.value)
    assert info.value.code == "prompt_too_long"
    assert peak < 4 * MAX_PROMPT_FILE_BYTES  # about one limit's worth read, not the file


def test_an_oversized_job_toml_is_refused_unread(tmp_path: Path) -> None:
    write(tmp_path / "prompt.txt", "A montage")
    write(tmp_path / "job.toml", "# " + "x" * 70_000 + '\naspect = "9:16"\n')
    with pytest.raises(UserError) as info:
        load_job_prompt(tmp_path / "prompt.txt", tmp_path / "job.toml")
    assert str(info.value).startswith("job.toml is 71 kB, at most 64 kB;")
    assert info.value.code == "bad_job_toml"
