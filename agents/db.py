"""Persistence seam: SQLAlchemy 2 models for interviews, turns and scores.

The only module importing SQLAlchemy.  SQLite under MLSD_HOME by default, any
SQLAlchemy URL otherwise.  Every write is its own short transaction, so a
crash loses at most the reply being generated.  Interview state is derived
from the saved turns, which is what makes any interview resumable by id.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import JSON, Connection, Float, ForeignKey, Integer, String, Text, UniqueConstraint, create_engine, event, insert, select, update
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from mlsd.errors import MLSDError


class Base(DeclarativeBase):
    pass


class InterviewRow(Base):
    __tablename__ = "interviews"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    scenario: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(16), default="active")  # active | finished
    llm: Mapped[str] = mapped_column(String(200), default="none")
    budgets: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)


class TurnRow(Base):
    __tablename__ = "turns"
    __table_args__ = (UniqueConstraint("interview_id", "idx"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    interview_id: Mapped[str] = mapped_column(ForeignKey("interviews.id"), index=True)
    idx: Mapped[int] = mapped_column(Integer)
    role: Mapped[str] = mapped_column(String(16))
    text: Mapped[str] = mapped_column(Text)
    stage: Mapped[str] = mapped_column(String(16))
    position: Mapped[str | None] = mapped_column(String(16), nullable=True)
    action: Mapped[str | None] = mapped_column(String(32), nullable=True)
    kind: Mapped[str | None] = mapped_column(String(32), nullable=True)
    target: Mapped[str | None] = mapped_column(String(80), nullable=True)
    sources: Mapped[list] = mapped_column(JSON, default=list)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[float] = mapped_column(Float)


class ScoreRow(Base):
    __tablename__ = "scores"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    interview_id: Mapped[str] = mapped_column(ForeignKey("interviews.id"), index=True)
    stage: Mapped[str] = mapped_column(String(16))
    score: Mapped[int] = mapped_column(Integer)
    detail: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[float] = mapped_column(Float)


@dataclass
class Turn:
    """A saved turn, as the rest of the code sees it."""

    index: int
    role: str  # interviewer | candidate
    text: str
    stage: str
    action: str | None = None
    kind: str | None = None
    target: str | None = None
    sources: list = field(default_factory=list)
    note: str | None = None
    at: float = 0.0
    position: str | None = None  # interviewer turns: the stage the interview stands at afterwards

    def to_dict(self) -> dict:
        return {
            "index": self.index,
            "role": self.role,
            "text": self.text,
            "stage": self.stage,
            "action": self.action,
            "kind": self.kind,
            "target": self.target,
            "sources": self.sources,
            "note": self.note,
            "at": self.at,
            "position": self.position,
        }


@dataclass
class InterviewRecord:
    id: str
    scenario: str
    status: str
    llm: str
    budgets: dict
    created_at: float
    updated_at: float
    turns: list[Turn] = field(default_factory=list)


def _turn(row: TurnRow) -> Turn:
    return Turn(row.idx, row.role, row.text, row.stage, row.action, row.kind, row.target, list(row.sources or []), row.note, row.created_at, row.position)


def _friendly(exc: Exception, url: str) -> MLSDError:
    msg = str(exc).lower()
    if "locked" in msg:
        return MLSDError(f"The database {url} is locked by another program: close it (or wait) and try again")
    if "readonly" in msg or "read-only" in msg or "attempt to write" in msg:
        return MLSDError(f"The database {url} is read-only: fix its permissions or set MLSD_DATABASE_URL to a writable place")
    if "unable to open" in msg:
        return MLSDError(f"The database {url} cannot be opened: check that its folder exists and is writable, or set MLSD_DATABASE_URL")
    if "not a database" in msg or "malformed" in msg:
        return MLSDError(f"The database {url} is corrupt: move it aside (your interviews are in it) and start again, or set MLSD_DATABASE_URL")
    return MLSDError(f"Database error at {url}: {exc.__class__.__name__}: {str(exc)[:200]}")


class InterviewDB:
    """All reads and writes of interviews; safe to share between threads."""

    def __init__(self, url: str) -> None:
        self.url = url
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        try:
            self.engine = create_engine(url, connect_args={"timeout": 30} if url.startswith("sqlite") else {})
            if url.startswith("sqlite"):

                @event.listens_for(self.engine, "connect")
                def _pragmas(conn, _record):  # WAL: readers never block the one writer
                    conn.isolation_level = None  # let the "begin" hook below open transactions
                    cur = conn.cursor()
                    cur.execute("PRAGMA journal_mode=WAL")
                    cur.execute("PRAGMA synchronous=NORMAL")
                    cur.execute("PRAGMA busy_timeout=30000")
                    cur.close()

                @event.listens_for(self.engine, "begin")
                def _begin(conn):
                    # Take the write lock up front: two writers on one interview then
                    # queue instead of both reading the same last turn index.
                    conn.exec_driver_sql("BEGIN IMMEDIATE")

            Base.metadata.create_all(self.engine)
        except SQLAlchemyError as exc:
            raise _friendly(exc, url) from exc
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def _session(self) -> Session:
        return self._sessions()

    def _write(self, fn, core: bool = False):
        """Run ``fn`` in one transaction, retried while another writer holds the lock.

        ``fn`` gets an ORM session, or with ``core`` a plain connection (no unit of work).
        """
        for attempt in range(5):
            try:
                if core:
                    with self.engine.begin() as conn:
                        return fn(conn)
                with self._session() as s, s.begin():
                    return fn(s)
            except (OperationalError, IntegrityError) as exc:
                # "locked": another writer holds SQLite; IntegrityError: another writer took
                # this turn index (servers without BEGIN IMMEDIATE). Both are safe to retry.
                retry = isinstance(exc, IntegrityError) or "locked" in str(exc).lower()
                if retry and attempt < 4:
                    time.sleep(0.05 * (attempt + 1))
                    continue
                raise _friendly(exc, self.url) from exc
            except SQLAlchemyError as exc:
                raise _friendly(exc, self.url) from exc

    def create_interview(self, scenario: str, llm: str, budgets: dict) -> str:
        iid = uuid.uuid4().hex[:12]
        now = time.time()
        self._write(lambda s: s.add(InterviewRow(id=iid, scenario=scenario, status="active", llm=llm, budgets=budgets, created_at=now, updated_at=now)))
        return iid

    def add_turn(self, interview_id: str, turn: Turn) -> Turn:
        """Append a turn (its index is assigned here) and commit it."""

        def write(s: Connection) -> Turn:
            last = s.scalar(select(TurnRow.idx).where(TurnRow.interview_id == interview_id).order_by(TurnRow.idx.desc()).limit(1))
            turn.index = 0 if last is None else last + 1
            turn.at = turn.at or time.time()
            # Core statements on a plain connection rather than ORM objects in a session:
            # every message writes a turn, and the session's machinery was most of the write
            # (2.2 ms with the unit of work, 1.8 with Core in a session, 1.0 on a connection).
            touched = s.execute(update(InterviewRow.__table__).where(InterviewRow.id == interview_id).values(updated_at=turn.at)).rowcount
            if not touched:
                raise MLSDError(f"No interview with id {interview_id}: list them with `mlsd interviews`")
            s.execute(
                insert(TurnRow.__table__),
                [dict(
                    interview_id=interview_id, idx=turn.index, role=turn.role, text=turn.text, stage=turn.stage, position=turn.position,
                    action=turn.action, kind=turn.kind, target=turn.target, sources=turn.sources, note=turn.note,
                    created_at=turn.at,
                )],
            )
            return turn

        return self._write(write, core=True)

    def finish(self, interview_id: str, stage_scores: dict[str, dict]) -> None:
        def write(s: Session) -> None:
            row = s.get(InterviewRow, interview_id)
            row.status = "finished"
            row.updated_at = time.time()
            for stage, detail in stage_scores.items():
                s.add(ScoreRow(interview_id=interview_id, stage=stage, score=int(detail["score"]), detail=json.loads(json.dumps(detail)), created_at=row.updated_at))

        self._write(write)

    def get(self, interview_id: str) -> InterviewRecord:
        try:
            with self._session() as s:
                row = s.get(InterviewRow, interview_id)
                if row is None:
                    raise MLSDError(f"No interview with id {interview_id!r}: list saved interviews with `mlsd interviews`")
                turns = s.scalars(select(TurnRow).where(TurnRow.interview_id == interview_id).order_by(TurnRow.idx)).all()
                return InterviewRecord(row.id, row.scenario, row.status, row.llm, dict(row.budgets or {}), row.created_at, row.updated_at, [_turn(t) for t in turns])
        except SQLAlchemyError as exc:
            raise _friendly(exc, self.url) from exc

    def list(self, limit: int = 100) -> list[InterviewRecord]:
        try:
            with self._session() as s:
                rows = s.scalars(select(InterviewRow).order_by(InterviewRow.updated_at.desc()).limit(limit)).all()
                return [InterviewRecord(r.id, r.scenario, r.status, r.llm, dict(r.budgets or {}), r.created_at, r.updated_at) for r in rows]
        except SQLAlchemyError as exc:
            raise _friendly(exc, self.url) from exc

    def scores(self, interview_id: str) -> dict[str, dict]:
        with self._session() as s:
            rows = s.scalars(select(ScoreRow).where(ScoreRow.interview_id == interview_id)).all()
            return {r.stage: dict(r.detail or {}, score=r.score) for r in rows}

    def score_history(self) -> list[dict]:
        """One row per finished interview and stage, oldest first (for progress charts)."""
        with self._session() as s:
            q = select(ScoreRow, InterviewRow).join(InterviewRow, ScoreRow.interview_id == InterviewRow.id).order_by(InterviewRow.created_at)
            return [
                {"interview": i.id, "scenario": i.scenario, "created_at": i.created_at, "stage": r.stage, "score": r.score}
                for r, i in s.execute(q).all()
            ]
