"""Store a batch of normalised events: identities first, then attribution, dedupe, parking,
and registrations — all in the caller's transaction.

Identity statements in the batch are applied before its usage events, so a batch whose
``group`` call comes after the user's first ``track`` attributes both at once; events that
still have no account are parked and moved to ``events`` when their user is linked.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Sequence
from dataclasses import replace
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.ingest.identity import account_named_by, link_of
from services.ingest.outcome import IngestResult
from shared.analytics.normalize import USAGE_TYPES, InvalidMessage, NormalizedEvent
from shared.analytics.registration import CONTRACT_SIGNED, contract_terms, registration
from shared.storage.account_profiles import AccountProfileRepository, ProfileUpdate
from shared.storage.events import EventRepository, EventRow
from shared.storage.identities import IdentityRepository, UnattributedEvent
from shared.storage.onboardings import OnboardingRepository

log = logging.getLogger(__name__)


_IDENTITY_TYPES = frozenset({"group", "identify", "alias"})


def _event_time(event: NormalizedEvent) -> datetime:
    return event.at


def _row(event: NormalizedEvent | UnattributedEvent, account_id: str) -> EventRow:
    """The stored form of an attributed event (a plain tuple: one per event, so cheap)."""
    return (event.id, account_id, event.user_id, event.name or "", event.at, event.properties)


def _by_kind(
    events: Sequence[NormalizedEvent],
) -> tuple[list[NormalizedEvent], list[NormalizedEvent], list[NormalizedEvent]]:
    """The batch's usage events, identity statements and group profile (``account``)
    statements, each in batch order: one pass instead of one per kind."""
    usage: list[NormalizedEvent] = []
    statements: list[NormalizedEvent] = []
    profiles: list[NormalizedEvent] = []
    for e in events:
        kind = e.type
        if kind in USAGE_TYPES:
            usage.append(e)
        elif kind in _IDENTITY_TYPES:
            statements.append(e)
        elif kind == "account":
            profiles.append(e)
    return usage, statements, profiles


async def _links(
    identities: IdentityRepository, statements: Sequence[NormalizedEvent], account_property: str
) -> dict[str, tuple[str, datetime]]:
    """The batch's identity statements in event-time order → user → (account, time), the
    latest per user (an alias takes its previous id's account as linked so far)."""
    aliased = {
        e.previous_id
        for e in statements
        if e.type == "alias" and e.previous_id and link_of(e, account_property) is None
    }
    stored = await identities.accounts_of(aliased) if aliased else {}
    linked: dict[str, tuple[str, datetime]] = {}
    for event in sorted(statements, key=_event_time):
        link = link_of(event, account_property)
        if link is None and event.type == "alias" and event.previous_id:
            previous = linked.get(event.previous_id)
            known = previous[0] if previous else stored.get(event.previous_id)
            link = (event.user_id, known) if known else None
        if link is not None:
            linked[link[0]] = (link[1], event.at)
    return linked


async def store_events(
    session: AsyncSession,
    events: Sequence[NormalizedEvent],
    *,
    plan_keys: Collection[str],
    account_property: str,
    recorded_at: datetime,
) -> IngestResult:
    """Apply a batch of normalised events; only flushes (the caller commits).

    A fixed number of statements per batch, whatever its size: identities (one read, one
    sorted link-and-lock), parked events taken and added, events inserted per source.
    """
    identities = IdentityRepository(session)
    stored = IngestResult()
    usage, statements, profiled = _by_kind(events)
    links = await _links(identities, statements, account_property)

    named = {e.id: account_named_by(e, account_property) for e in usage}
    users = {e.user_id for e in usage if not named[e.id]} - links.keys()
    accounts: dict[str, str | None] = dict(await identities.accounts_of(users))
    unknown = users - accounts.keys()
    if links or unknown:
        accounts.update(await identities.link_and_claim(links, claim=unknown))

    attributed: list[EventRow] = []  # in batch order (the first registration wins)
    by_source: dict[str, list[EventRow]] = {}  # the same rows, per source
    parked: list[UnattributedEvent] = []
    for e in usage:
        account = named[e.id] or accounts.get(e.user_id)
        if account:
            row: EventRow = (e.id, account, e.user_id, e.name or "", e.at, e.properties)
            attributed.append(row)
            if (rows := by_source.get(e.source)) is None:
                rows = by_source[e.source] = []
            rows.append(row)
        else:
            parked.append(
                UnattributedEvent(e.id, e.user_id, e.name or "", e.at, e.properties, e.source)
            )
    if links:
        for user, waiting in (await identities.take_pending_of(links)).items():
            account = accounts.get(user) or links[user][0]
            for w in waiting:
                row = _row(w, account)
                attributed.append(row)
                by_source.setdefault(w.source, []).append(row)

    if parked:
        new_parked = await identities.add_pending(parked, recorded_at)
        stored.pending = len(new_parked)
        stored.duplicates += len(parked) - len(new_parked)

    events_repo = EventRepository(session)
    for source, rows in by_source.items():
        new = await events_repo.add_rows(rows, source=source, recorded_at=recorded_at)
        stored.accepted += new
        stored.duplicates += len(rows) - new

    touched = stored.facts
    for user in links:
        if account := accounts.get(user):
            touched.setdefault(account, [])
    profiles = _profile_updates(profiled)
    if profiles:
        await AccountProfileRepository(session).apply(profiles)
        for profile in profiles:
            touched.setdefault(profile.account_id, [])  # re-projected with its new name
    for row in attributed:
        touched.setdefault(row[1], []).append(row[0])
    await _register(session, attributed, plan_keys, recorded_at, stored)
    return stored


def _profile_updates(events: Sequence[NormalizedEvent]) -> list[ProfileUpdate]:
    """The batch's group profile updates (``account`` statements), in order."""
    updates = []
    for e in events:
        if e.type == "account" and e.group_id:
            if e.traits:
                updates.append(ProfileUpdate(e.group_id, e.traits, once=False, at=e.at))
            if e.properties:
                updates.append(ProfileUpdate(e.group_id, e.properties, once=True, at=e.at))
    return updates


async def _register(
    session: AsyncSession,
    attributed: Iterable[EventRow],
    plan_keys: Collection[str],
    recorded_at: datetime,
    stored: IngestResult,
) -> None:
    """One statement for every Contract Signed of the batch (first registration wins)."""
    signed = []
    for row in attributed:
        if row[3] != CONTRACT_SIGNED:  # the name: most rows are not, so not unpacked
            continue
        event_id, account_id, _, _, at, properties = row
        try:
            terms = contract_terms(properties, plan_keys)
        except InvalidMessage as error:  # only parked events can get here: plans changed since
            log.error("event %s no longer registers an onboarding: %s", event_id, error)
            continue
        signed.append((terms, account_id, at))
    if not signed:
        return
    profiles = await AccountProfileRepository(session).of({account for _, account, _ in signed})
    registrations = []
    for terms, account_id, at in signed:
        if (profile := profiles.get(account_id)) is not None:  # the profile fills the gaps
            terms = replace(
                terms,
                account_name=terms.account_name or profile.name,
                licensed_seats=(
                    profile.licensed_seats if terms.licensed_seats is None else terms.licensed_seats
                ),
            )
        registrations.append(registration(terms, account_id, at))
    new = await OnboardingRepository(session).register_many(registrations, recorded_at)
    stored.registered += len(new)
    for fact in registrations:
        stored.facts[fact.account_id].append(fact.id)
