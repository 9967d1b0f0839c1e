"""The inbox: which files make a job, and when a job is ready — with real inotify and real files."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from loguru import logger

from nemowatch.daemon.inbox import InboxWatcher, check_layout
from nemowatch.daemon.jobscan import inbox_candidates, is_busy, is_conflicted, is_ignored, scan_job
from nemowatch.errors import UserError

SETTLE = 0.4
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 64


class Ready:
    """Records every on_ready call: the path, when, and the sizes of its files at that moment."""

    def __init__(self) -> None:
        self.calls: list[tuple[Path, float, dict[str, int]]] = []

    def __call__(self, path: Path) -> None:
        sizes = {}
        if path.is_dir():
            for file in path.rglob("*"):
                if file.is_file():
                    sizes[file.relative_to(path).as_posix()] = file.stat().st_size
        self.calls.append((path, time.monotonic(), sizes))

    @property
    def paths(self) -> list[Path]:
        return [path for path, _, _ in self.calls]


async def wait_for(predicate: Callable[[], Any], timeout: float = 15.0) -> None:
    """Poll ``predicate`` until it holds; fail after ``timeout`` (a bound, not a speed claim)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(0.02)


Factory = Callable[..., Awaitable[tuple[InboxWatcher, Ready, Path]]]


@pytest.fixture
async def watch(tmp_path: Path) -> AsyncIterator[Factory]:
    """Start a watcher on tmp_path/inbox with small timings; stopped at the end of the test."""
    started: list[InboxWatcher] = []
    inbox = tmp_path / "inbox"
    inbox.mkdir()

    async def make(**options: Any) -> tuple[InboxWatcher, Ready, Path]:
        ready = Ready()
        options.setdefault("settle_s", SETTLE)
        options.setdefault("rescan_s", 60)
        watcher = InboxWatcher(inbox, on_ready=ready, **options)
        await watcher.start()
        started.append(watcher)
        return watcher, ready, inbox

    yield make
    for watcher in started:
        await watcher.stop()


def make_job(inbox: Path, name: str, files: dict[str, bytes] | None = None, prompt: bool = True) -> Path:
    job = inbox / name
    job.mkdir(parents=True, exist_ok=True)
    if prompt:
        (job / "prompt.txt").write_text("a short film", encoding="utf-8")
    for rel, data in ({"photo.jpg": PNG} if files is None else files).items():
        (job / rel).parent.mkdir(parents=True, exist_ok=True)
        (job / rel).write_bytes(data)
    return job


def write_in_chunks(path: Path, chunks: int, chunk: bytes, pause_s: float) -> threading.Thread:
    """Grow ``path`` chunk by chunk from a thread, like a slow copy or upload."""

    def run() -> None:
        with open(path, "ab") as fh:
            for _ in range(chunks):
                fh.write(chunk)
                fh.flush()
                time.sleep(pause_s)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


# -- readiness with real inotify ---------------------------------------------------------------------


async def test_job_starts_only_after_its_folder_was_quiet_for_settle_s(watch: Factory) -> None:
    watcher, ready, inbox = await watch()
    job = make_job(inbox, "shoot", {"1.jpg": PNG, "2.jpg": PNG})
    last_write = time.monotonic()

    await wait_for(lambda: ready.calls)
    assert ready.paths == [job]
    assert ready.calls[0][1] - last_write >= SETTLE * 0.9
    assert watcher.pending() == []


async def test_file_still_being_copied_in_keeps_the_job_waiting(watch: Factory) -> None:
    _, ready, inbox = await watch()
    job = make_job(inbox, "big", {})  # prompt.txt first, as a user or a sync client often does
    chunk = b"x" * 64 * 1024
    writer = write_in_chunks(job / "clip.mp4", 8, chunk, SETTLE / 3)
    await asyncio.to_thread(writer.join)
    finished = time.monotonic()

    await wait_for(lambda: ready.calls)
    _, at, sizes = ready.calls[0]
    assert sizes["clip.mp4"] == 8 * len(chunk)
    assert at - finished >= SETTLE * 0.9


async def test_files_written_into_a_brand_new_nested_folder_are_waited_for(watch: Factory) -> None:
    _, ready, inbox = await watch()
    job = make_job(inbox, "nested", {})
    deep = job / "day1" / "morning"
    deep.mkdir(parents=True)  # files appear before watchdog can watch the new folders
    (deep / "first.jpg").write_bytes(PNG)
    writer = write_in_chunks(deep / "clip.mp4", 6, b"y" * 32 * 1024, SETTLE / 3)
    await asyncio.to_thread(writer.join)

    await wait_for(lambda: ready.calls)
    sizes = ready.calls[0][2]
    assert sizes["day1/morning/clip.mp4"] == 6 * 32 * 1024
    assert "day1/morning/first.jpg" in sizes
    assert [p.name for p in scan_job(job).media] == ["clip.mp4", "first.jpg"]


BUSY_NAMES = [
    "IMG_1.jpg.part",
    "IMG_1.jpg.crdownload",
    ".syncthing.IMG_1.jpg.tmp",
    "~syncthing~IMG_1.jpg.tmp",
    ".IMG_1.jpg.~1a2b3c4d",  # Nextcloud
]


async def test_sync_client_temp_files_keep_a_job_waiting_until_renamed(watch: Factory) -> None:
    watcher, ready, inbox = await watch()
    jobs = {}
    for i, busy in enumerate(BUSY_NAMES):
        jobs[busy] = make_job(inbox, f"job{i}", {busy: PNG})

    def all_busy() -> bool:
        reasons = {row["name"]: row["reason"] for row in watcher.pending()}
        return all(reasons.get(job.name) == f"busy: {busy}" for busy, job in jobs.items())

    await wait_for(all_busy)
    assert ready.calls == []

    for busy, job in jobs.items():
        os.rename(job / busy, job / "IMG_1.jpg")
    await wait_for(lambda: len(ready.calls) == len(jobs))
    assert sorted(ready.paths) == sorted(jobs.values())
    for job in jobs.values():
        assert [p.name for p in scan_job(job).media] == ["IMG_1.jpg"]


async def test_litter_from_sync_clients_neither_blocks_nor_counts(watch: Factory) -> None:
    _, ready, inbox = await watch()
    litter = {
        ".DS_Store": b"x",
        "Thumbs.db": b"x",
        "desktop.ini": b"x",
        "~$notes.docx": b"x",
        "__MACOSX/._photo.jpg": b"x",
        ".stfolder/marker": b"x",
        "@eaDir/photo.jpg/SYNOPHOTO_THUMB_S.jpg": b"x",
        ".dropbox.cache/old.jpg": b"x",
    }
    job = make_job(inbox, "trip", {"photo.jpg": PNG, **litter})
    stop = threading.Event()

    def churn() -> None:
        # Finder keeps rewriting .DS_Store; that must not postpone the job forever.
        n = 0
        while not stop.is_set():
            n += 1
            (job / ".DS_Store").write_bytes(b"x" * n)
            time.sleep(0.05)

    thread = threading.Thread(target=churn)
    thread.start()
    try:
        await wait_for(lambda: ready.calls)
    finally:
        stop.set()
        await asyncio.to_thread(thread.join)
    scan = scan_job(job)
    assert [p.name for p in scan.media] == ["photo.jpg"]
    assert {".DS_Store", "Thumbs.db", "__MACOSX", ".stfolder", "@eaDir", ".dropbox.cache"} <= set(
        scan.ignored
    )
    assert scan.busy == [] and scan.unsupported == []


async def test_text_file_in_the_inbox_is_a_prompt_only_job(watch: Factory) -> None:
    _, ready, inbox = await watch()
    (inbox / "stray.jpg").write_bytes(PNG)  # media directly in the inbox is no job
    (inbox / "idea.txt").write_text("a video about the sea", encoding="utf-8")

    await wait_for(lambda: ready.calls)
    assert ready.paths == [inbox / "idea.txt"]
    scan = scan_job(inbox / "idea.txt")
    assert (scan.kind, scan.name, scan.prompt, scan.media) == ("text", "idea", inbox / "idea.txt", [])


async def test_jobs_already_in_the_inbox_at_start_are_picked_up(tmp_path: Path, watch: Factory) -> None:
    inbox = tmp_path / "inbox"
    old = make_job(inbox, "waiting-since-yesterday")
    day_ago = time.time() - 86400
    for path in [old, *old.iterdir()]:
        os.utime(path, (day_ago, day_ago))
    make_job(inbox, "no-prompt-yet", prompt=False)
    (inbox / "later.txt").write_text("text only", encoding="utf-8")

    watcher, ready, _ = await watch()
    await wait_for(lambda: len(ready.calls) == 2)
    assert sorted(ready.paths) == [inbox / "later.txt", old]
    assert watcher.pending() == [
        {"name": "no-prompt-yet", "path": str(inbox / "no-prompt-yet"), "reason": "no prompt.txt"}
    ]


async def test_polling_mode_sees_jobs_on_folders_inotify_cannot_watch(watch: Factory) -> None:
    _, ready, inbox = await watch(polling=True, poll_interval_s=0.1)
    job = make_job(inbox, "nfs-job", {})
    writer = write_in_chunks(job / "clip.mp4", 5, b"z" * 16 * 1024, SETTLE / 3)
    await asyncio.to_thread(writer.join)
    finished = time.monotonic()

    await wait_for(lambda: ready.calls)
    assert ready.paths == [job]
    assert ready.calls[0][2]["clip.mp4"] == 5 * 16 * 1024
    assert ready.calls[0][1] - finished >= SETTLE * 0.9


async def test_rescan_finds_jobs_whose_events_were_lost(watch: Factory) -> None:
    # A polling observer that never gets to poll stands in for dropped events (inotify queue overflow).
    watcher, ready, inbox = await watch(polling=True, poll_interval_s=3600, rescan_s=0.2)
    job = make_job(inbox, "missed")
    await wait_for(lambda: ready.calls)
    assert ready.paths == [job]
    assert watcher.events == 0


async def test_a_storm_of_300_files_costs_one_check_per_quiet_window(watch: Factory) -> None:
    watcher, ready, inbox = await watch(settle_s=0.5)
    job = make_job(inbox, "storm", {})
    for i in range(300):
        (job / f"IMG_{i}.jpg").write_bytes(PNG)

    await wait_for(lambda: ready.calls)
    assert watcher.events >= 300
    assert watcher.scans <= 3
    assert len(scan_job(job).media) == 300


async def test_job_is_reported_once_and_again_only_when_dropped_anew(tmp_path: Path, watch: Factory) -> None:
    watcher, ready, inbox = await watch()
    job = make_job(inbox, "repeat")
    await wait_for(lambda: ready.calls)

    (job / "late.jpg").write_bytes(PNG)  # a change after the hand-over does not start it twice
    os.rename(job, tmp_path / "claimed")  # the service claims it …
    make_job(inbox, "repeat", {"other.jpg": PNG})  # … and the user drops a new one of the same name
    await wait_for(lambda: len(ready.calls) == 2)
    assert ready.paths == [job, job]
    assert "other.jpg" in ready.calls[1][2]
    assert watcher.pending() == []


async def test_media_without_prompt_is_reported_once_as_an_orphan(watch: Factory) -> None:
    messages: list[str] = []
    sink = logger.add(lambda m: messages.append(m.record["message"]), level="WARNING")
    try:
        watcher, ready, inbox = await watch(orphan_after_s=0.3, rescan_s=0.1)
        orphan = make_job(inbox, "holiday", {"beach.jpg": PNG}, prompt=False)
        await wait_for(lambda: watcher.orphans() == [orphan])
        scans = watcher.scans
        await wait_for(lambda: watcher.scans >= scans + 3)  # a few more rescans look at it again
        said = [m for m in messages if "holiday" in m]
        assert said == ["folder holiday has media but no prompt.txt; add one to start the job"]

        (orphan / "prompt.txt").write_text("our holiday", encoding="utf-8")
        await wait_for(lambda: ready.calls)
        assert watcher.orphans() == []
    finally:
        logger.remove(sink)


# -- the inbox itself lost and back (the daemon-level arcs are in test_watch_loss.py) -----------------


async def test_lost_inbox_keeps_what_it_knew_reports_nothing_and_is_watched_again(
    tmp_path: Path, watch: Factory
) -> None:
    errors: list[str] = []
    sink = logger.add(lambda m: errors.append(m.record["message"]), level="ERROR")
    try:
        watcher, ready, inbox = await watch(orphan_after_s=0.0, check_s=0.3)
        orphan = make_job(inbox, "holiday", {"beach.jpg": PNG}, prompt=False)
        await wait_for(lambda: watcher.orphans() == [orphan])
        before = watcher.pending()
        assert [row["name"] for row in before] == ["holiday"]

        # Renamed away: inotify still follows the folder, and reports its events under the inbox's path.
        away = tmp_path / "away"
        inbox.rename(away)
        await wait_for(lambda: watcher.missing is not None)
        make_job(away, "half", {"a.jpg": PNG})
        await asyncio.sleep(SETTLE * 3)  # several quiet windows: nothing may be handed over meanwhile
        assert ready.calls == []
        assert watcher.pending() == before and watcher.orphans() == [orphan]
        report = watcher.report()
        assert report["missing"]["reason"].startswith("is gone") and report["pending"] == {
            "holiday": "no prompt.txt"
        }
        assert len(errors) == 1 and errors[0].startswith(f"the inbox {inbox} is gone")

        rearmed_at = time.monotonic()
        away.rename(inbox)
        await wait_for(lambda: ready.paths == [inbox / "half"])
        assert watcher.missing is None and watcher.rearms == 1 and watcher.report()["missing"] is None
        # Found by the re-arm's scan, and left to settle from the re-arm on (however old its files are).
        assert ready.calls[0][1] - rearmed_at >= SETTLE * 0.9
        assert len(errors) == 1
    finally:
        logger.remove(sink)


async def test_inbox_deleted_and_recreated_is_watched_again(tmp_path: Path, watch: Factory) -> None:
    watcher, ready, inbox = await watch(check_s=0.3)
    make_job(inbox, "first")
    await wait_for(lambda: len(ready.calls) == 1)
    for rounds in (1, 2):  # twice: the new watch must notice its own folder's loss too
        shutil.rmtree(inbox)
        await wait_for(lambda: watcher.missing is not None)
        inbox.mkdir()
        job = make_job(inbox, f"after-{rounds}")
        await wait_for(lambda j=job: ready.paths[-1:] == [j])  # type: ignore[misc]
        assert watcher.rearms == rounds


async def test_bare_mount_point_is_not_the_inbox(tmp_path: Path, watch: Factory) -> None:
    """As root: the inbox is a tmpfs; unmounted, a folder in the bare mount point is never handed over,
    and a new mount is watched. Without root (or where mounting is refused): a new folder renamed onto
    the path at once is watched as the inbox it replaced."""
    inbox = tmp_path / "inbox"
    mounted = os.geteuid() == 0 and _mount_tmpfs(inbox)
    try:
        watcher, ready, _ = await watch(check_s=0.3)
        if mounted:
            subprocess.run(["umount", str(inbox)], check=True)
            await wait_for(lambda: watcher.missing is not None)
            assert watcher.missing is not None and "no longer mounted" in watcher.missing.reason
            make_job(inbox, "under")  # written into the bare mount point, not the inbox
            await asyncio.sleep(SETTLE * 3)
            assert ready.calls == [] and watcher.rearms == 0
            assert _mount_tmpfs(inbox)
        else:
            fresh = tmp_path / "fresh"
            fresh.mkdir()
            inbox.rename(tmp_path / "old")
            fresh.rename(inbox)
        job = make_job(inbox, "fresh-job")
        await wait_for(lambda: ready.paths == [job])
        assert watcher.missing is None and watcher.rearms == 1
    finally:
        if mounted:
            while os.path.ismount(inbox):
                subprocess.run(["umount", "-l", str(inbox)], check=False)


def _mount_tmpfs(where: Path) -> bool:
    where.mkdir(exist_ok=True)
    return (
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(where)], check=False
        ).returncode
        == 0
    )


async def test_missing_inbox_is_one_clear_sentence(tmp_path: Path) -> None:
    watcher = InboxWatcher(tmp_path / "nope", settle_s=1, on_ready=lambda p: None)
    with pytest.raises(UserError, match=r"the inbox .*nope does not exist"):
        await watcher.start()


def test_outbox_or_state_inside_the_inbox_is_refused(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    with pytest.raises(UserError) as caught:
        check_layout(inbox, inbox / "out", tmp_path / "state")
    assert str(caught.value).startswith(f"the outbox {inbox / 'out'} lies inside the inbox {inbox}")
    assert "process its own output" in str(caught.value)
    with pytest.raises(UserError, match=r"the state folder .* lies inside the inbox"):
        check_layout(inbox, tmp_path / "out", inbox / ".state")
    with pytest.raises(UserError, match=r"the outbox .* lies inside the inbox"):
        check_layout(inbox, inbox, tmp_path / "state")
    check_layout(inbox, tmp_path / "inbox-out", tmp_path / "state")  # a sibling with a shared prefix is fine


# -- what a scan finds ---------------------------------------------------------------------------------


def test_media_are_listed_in_natural_name_order(tmp_path: Path) -> None:
    job = make_job(
        tmp_path,
        "order",
        {n: PNG for n in ["10.jpg", "2.jpg", "1.JPG", "sub/3.png", "a11.mp3", "A2.mp3", "sub/10.mov"]},
    )
    rel = [p.relative_to(job).as_posix() for p in scan_job(job).media]
    assert rel == ["1.JPG", "2.jpg", "10.jpg", "A2.mp3", "a11.mp3", "sub/3.png", "sub/10.mov"]


def test_conflicted_copies_are_reported_and_never_sent(tmp_path: Path) -> None:
    job = make_job(
        tmp_path,
        "c",
        {
            "IMG_1.jpg": PNG,
            "IMG_1 (Ann's conflicted copy 2024-01-02).jpg": PNG,
            "clip.sync-conflict-20240101-120000-ABCDEFG.mp4": PNG,
        },
    )
    scan = scan_job(job)
    assert [p.name for p in scan.media] == ["IMG_1.jpg"]
    assert scan.conflicted == [
        "clip.sync-conflict-20240101-120000-ABCDEFG.mp4",
        "IMG_1 (Ann's conflicted copy 2024-01-02).jpg",
    ]


def test_symlinks_leaving_the_job_are_reported_and_never_followed(tmp_path: Path) -> None:
    secret = tmp_path / "private.jpg"
    secret.write_bytes(PNG)
    (tmp_path / "elsewhere").mkdir()
    job = make_job(tmp_path, "links", {"photo.jpg": PNG, "sub/clip.mp4": PNG})
    (job / "escape.jpg").symlink_to(secret)
    (job / "escape-dir").symlink_to(tmp_path / "elsewhere")
    (job / "dotdot.jpg").symlink_to("../private.jpg")
    (job / "same.jpg").symlink_to("sub/clip.mp4")  # inside the job: fine
    scan = scan_job(job)
    assert scan.escaping_symlinks == ["dotdot.jpg", "escape-dir", "escape.jpg"]
    assert sorted(p.name for p in scan.media) == ["clip.mp4", "photo.jpg", "same.jpg"]
    assert all(secret != p.resolve() for p in scan.media)


def test_prompt_name_is_case_insensitive_and_other_files_are_reported(tmp_path: Path) -> None:
    job = make_job(tmp_path, "case", {"Prompt.TXT": b"hi", "Job.toml": b"", "notes.docx": b"x"}, prompt=False)
    scan = scan_job(job)
    assert scan.prompt == job / "Prompt.TXT"
    assert scan.job_toml == job / "Job.toml"
    assert scan.unsupported == ["notes.docx"]
    assert scan.waiting_reason is None


def test_fingerprint_changes_with_media_but_not_with_litter(tmp_path: Path) -> None:
    job = make_job(tmp_path, "fp")
    before = scan_job(job).fingerprint
    (job / ".DS_Store").write_bytes(b"junk")
    (job / "._photo.jpg").write_bytes(b"junk")
    assert scan_job(job).fingerprint == before
    (job / "photo.jpg").write_bytes(PNG + b"more")
    assert scan_job(job).fingerprint != before


@pytest.mark.parametrize(
    "name",
    [
        "a.part",
        "a.PARTIAL",
        "a.crdownload",
        "a.download",
        "a.tmp",
        ".syncthing.a.jpg.tmp",
        "~syncthing~a.jpg.tmp",
        ".a.jpg.~1a2b3c4d",
        ".~lock.report.odt#",
    ],
)
def test_files_still_being_written_are_busy_not_ignored(name: str) -> None:
    assert is_busy(name)
    assert not is_ignored(name)


@pytest.mark.parametrize(
    "name",
    [
        ".dropbox",
        ".dropbox.attr",
        ".dropbox.cache",
        ".stversions",
        ".DS_Store",
        "._IMG_1.jpg",
        "__MACOSX",
        ".Spotlight-V100",
        ".Trashes",
        "Thumbs.db",
        "desktop.ini",
        "$RECYCLE.BIN",
        "~$budget.xlsx",
        "@eaDir",
        "#recycle",
        ".hidden.jpg",
    ],
)
def test_sync_and_os_litter_is_ignored(name: str) -> None:
    assert is_ignored(name)
    assert not is_busy(name)


def test_ordinary_names_are_neither_busy_ignored_nor_conflicted() -> None:
    for name in ["IMG_1.jpg", "prompt.txt", "my party.mp4", "part.jpg", "tmp", "conflict.jpg"]:
        assert not (is_busy(name) or is_ignored(name) or is_conflicted(name)), name


def test_inbox_candidates_are_folders_and_text_files_only(tmp_path: Path) -> None:
    for folder in ["b", "a", ".stfolder", "c.part"]:
        (tmp_path / folder).mkdir()
    for file in ["idea.txt", "photo.jpg", ".hidden.txt", "x.txt.part"]:
        (tmp_path / file).write_bytes(b"x")
    (tmp_path / "link").symlink_to(tmp_path / "a")
    assert [p.name for p in inbox_candidates(tmp_path)] == ["a", "b", "idea.txt"]


# -- what is skipped, said once ------------------------------------------------------------------------


async def test_symlinked_jobs_in_the_inbox_are_reported_once_each(watch: Factory, tmp_path: Path) -> None:
    elsewhere = make_job(tmp_path / "elsewhere", "shoot")
    (tmp_path / "elsewhere" / "idea.txt").write_text("a title card", encoding="utf-8")
    inbox = tmp_path / "inbox"
    (inbox / "before").symlink_to(elsewhere)  # there when the daemon starts
    messages: list[str] = []
    sink = logger.add(lambda m: messages.append(m.record["message"]), level="WARNING")
    try:
        watcher, ready, _ = await watch(rescan_s=0.1)
        (inbox / "idea.txt").symlink_to(tmp_path / "elsewhere" / "idea.txt")  # arrives while it runs
        (inbox / "photo.jpg").symlink_to(elsewhere / "photo.jpg")  # not a job either way: not reported
        make_job(inbox, "real")
        await wait_for(lambda: len(watcher.skipped_links()) == 2 and ready.calls)
        await asyncio.sleep(0.5)  # five more rescans list the links again
        said = sorted(m for m in messages if m.startswith("skipped"))
        assert said == [
            "skipped before in the inbox: it is a link to a folder; links are never followed"
            " — copy the folder into the inbox instead",
            "skipped idea.txt in the inbox: it is a link to a text file; links are never followed"
            " — copy the file into the inbox instead",
        ]
        assert watcher.skipped_links().keys() == {"before", "idea.txt"}
        assert ready.paths == [inbox / "real"]  # the links never became jobs; the real one did
        assert (elsewhere / "prompt.txt").exists() and (elsewhere / "photo.jpg").exists()

        (inbox / "before").unlink()
        await wait_for(lambda: watcher.skipped_links().keys() == {"idea.txt"})
    finally:
        logger.remove(sink)


def test_a_prompt_txt_that_is_no_readable_file_still_makes_a_job(tmp_path: Path) -> None:
    # Not "no prompt.txt" (a wait that never ends): the job starts and fails saying what is wrong.
    folder = make_job(tmp_path, "folder", prompt=False)
    (folder / "prompt.txt").mkdir()
    (folder / "prompt.txt" / "inside.jpg").write_bytes(PNG)
    linked = make_job(tmp_path, "linked", prompt=False)
    (tmp_path / "secret.txt").write_text("not for the backend", encoding="utf-8")
    (linked / "prompt.txt").symlink_to(tmp_path / "secret.txt")
    dangling = make_job(tmp_path, "dangling", prompt=False)
    (dangling / "prompt.txt").symlink_to(tmp_path / "nowhere.txt")
    for job in (folder, linked, dangling):
        scan = scan_job(job)
        assert scan.prompt == job / "prompt.txt" and scan.waiting_reason is None, job.name
        assert [p.name for p in scan.media] == ["photo.jpg"]  # prompt.txt/inside.jpg is never sent
        assert scan.escaping_symlinks == []  # reported once, as the prompt's problem
