"""Zendesk Support: ticket audits (their comments) and satisfaction ratings, as wire moments.

A record is what the Support API returns: a ticket audit (`id`, `ticket_id`, `author_id`,
`created_at`, `via`, `events`), one per line or a list response (`{"audits": [...]}`, with the
`users` and `tickets` it sideloads), an `{"audit": ..., "ticket": ...}` response, or a
satisfaction rating (`score`, `requester_id`, `ticket_id`), one per line or a list response
(`{"satisfaction_ratings": [...]}`). The mapping (docs/sources.md has the table):

- a public `Comment` (or `VoiceComment`) event is a moment; an audit without one (field
  changes, notifications) and an internal note (`public: false`) are no moments;
- direction: the author is the brand's when listed in `[zendesk] agents` or sideloaded with
  role agent/admin, the customer's when sideloaded as an end-user; otherwise the author is
  the customer when it is the ticket's requester and an agent when it is not (the requester
  comes from the sideloaded ticket, or from the audit that created the ticket);
- identity: the comment that opened the ticket is `ticket:<ticket_id>`, every other comment
  `comment:<id>` and replies to the ticket (`in_reply_to` = `ticket:<ticket_id>`);
- kind: the opening comment is a `question` (a `complaint` for tickets of type incident or
  problem), later customer comments `reply`, agent comments `answer`;
- channel from `via.channel`: the audit's for a customer's comment; for an agent's, the
  ticket's when it is sideloaded (an answer typed in the agent workspace goes out by the
  ticket's channel), else the audit's;
- function: the agent in `agents`, else the ticket's group in `groups`, else the support
  address the ticket came to in `mailboxes`, else `default_function` (service);
- a satisfaction rating: the survey offered is an outbound `ask` (survey) at `created_at`; a
  `good`/`bad` score is an inbound `praise`/`complaint` (sentiment 1/-1) at `updated_at` that
  replies to it; `unoffered` is no moment.

Identity evidence becomes link messages (SPEC §2; `links = false` turns them off,
`email_bridge = false` the email bridge alone): the users a response includes
(`?include=users`, `GET /api/v2/users`, `{"user": ...}`) and their identities
(`?include=identities`, `GET /api/v2/users/{id}/identities`). An end-user's `email` (at the
user's `created_at`) and each `email` identity (at its `created_at`) link the user to the
address's `email:` id; a `twitter` identity links the user to the handle's id under the X
section's `customer_prefix` (`x:@handle`), which X records link to the account's user id.
Agents and admins are the brand's staff, not customers: their users make no links. A merge of
users moves the merged user's identities to the one kept: the email identities then link both.
A webhook's `zen:event-type:user.merged` event links the merged user (`detail.id`) to the one
kept (the `event` object's user id) at the event's `time`.
"""

from __future__ import annotations

from typing import Any, Final

from mot.adapters.vendors.base import (
    NotAMoment,
    Record,
    Unmappable,
    VendorSource,
    Wire,
    compact,
    customer_ids,
    email_link,
    handle_id,
    link,
    moment,
    obj,
    objects,
    one_or_many,
    records_of,
    source_ref,
    text,
    timestamp,
)
from mot.adapters.vendors.config import VendorConfig, VendorSettings

SYSTEM: Final = "zendesk"

# `via.channel` values of the Support API and the wire channel each means.
CHANNELS: Final = {
    "email": "email", "web": "web", "web_form": "web", "helpcenter": "web", "web_service": "web",
    "api": "web", "mobile": "chat", "mobile_sdk": "chat", "chat": "chat", "chat_transcript": "chat",
    "native_messaging": "chat", "web_widget": "chat", "messaging": "chat", "whatsapp": "chat",
    "line": "chat", "wechat": "chat", "telegram": "chat", "viber": "chat", "voice": "phone",
    "phone_call_inbound": "phone", "phone_call_outbound": "phone", "voicemail": "phone",
    "sms": "sms", "twitter": "twitter", "twitter_dm": "twitter", "twitter_favorite": "twitter",
    "facebook": "facebook", "facebook_post": "facebook", "facebook_message": "facebook",
    "instagram_dm": "instagram", "linkedin": "linkedin",
}
COMMENT_EVENTS: Final = frozenset({"Comment", "VoiceComment"})
AGENT_ROLES: Final = frozenset({"agent", "admin"})
COMPLAINT_TYPES: Final = frozenset({"incident", "problem"})


USER_MERGED: Final = "zen:event-type:user.merged"
"""The webhook event of a user merged into another (Admin Center > Webhooks, user events)."""


def records(value: Any) -> list[Record]:
    """Audits or satisfaction ratings, bare, wrapped, or in a list response with its sideloads;
    the users and identities a response includes, as one more record (links); a webhook's
    `user.merged` event."""
    if isinstance(value, dict) and value.get("type") == USER_MERGED:
        return [value]
    if isinstance(value, dict):
        people = _people(value)
        for key in ("audits", "satisfaction_ratings"):
            items = value.get(key)
            if isinstance(items, list):
                found = records_of(items, f"`{key}`")
                if key == "audits" and ("users" in value or "tickets" in value):
                    found = [_with_sideloads(audit, value) for audit in found]
                return found + people
        rating = value.get("satisfaction_rating")
        if isinstance(rating, dict):
            return [rating, *people]
        if isinstance(value.get("audit"), dict):
            return [value, *people]
        if people:
            return people
    return one_or_many(value, ())


def _people(envelope: dict[str, Any]) -> list[Record]:
    """The users and identities of a response, as one record: `{"users": [...], "identities": [...]}`."""
    users = objects(envelope.get("users"))
    if isinstance(envelope.get("user"), dict):
        users.append(envelope["user"])
    identities = objects(envelope.get("identities"))
    if not users and not identities:
        return []
    return [{"users": users, "identities": identities}]


def _with_sideloads(audit: Record, envelope: dict[str, Any]) -> Record:
    """One audit with the ticket and the users of its list response that concern it."""
    ticket_id = audit.get("ticket_id")
    ticket = next((t for t in objects(envelope.get("tickets")) if t.get("id") == ticket_id), None)
    wanted = {audit.get("author_id"), *(e.get("author_id") for e in objects(audit.get("events")))}
    if ticket is not None:
        wanted.add(ticket.get("requester_id"))
    users = [u for u in objects(envelope.get("users")) if u.get("id") in wanted]
    out: Record = {"audit": audit}
    if ticket is not None:
        out["ticket"] = ticket
    if users:
        out["users"] = users
    return out


def map_record(record: Record, config: VendorConfig) -> list[Wire]:
    settings = config[SYSTEM]
    if isinstance(record.get("audit"), dict):
        return _audit(record["audit"], obj(record.get("ticket")), objects(record.get("users")), settings)
    if "events" in record and "ticket_id" in record:
        return _audit(record, {}, [], settings)
    if "score" in record and "ticket_id" in record:
        return _rating(record, settings)
    if isinstance(record.get("users"), list) or isinstance(record.get("identities"), list):
        return _people_links(objects(record.get("users")), objects(record.get("identities")), config)
    if record.get("type") == USER_MERGED:
        return _user_merged(record, settings)
    raise Unmappable("neither a ticket audit (`ticket_id`, `events`), a satisfaction rating "
                     "(`score`, `ticket_id`), users or identities, nor a user.merged event")


def customers(record: Record, config: VendorConfig) -> list[str]:
    """The end-users a record names: a ticket's requester and its comments' authors (other
    than known agents and Zendesk itself), a rating's requester, users and identities, a
    user.merged event's two users."""
    settings = config[SYSTEM]
    audit = obj(record.get("audit")) or record
    ticket = obj(record.get("ticket"))
    users = objects(record.get("users"))
    events = objects(audit.get("events"))
    found = [ticket.get("requester_id"), record.get("requester_id"),
             *(e.get("value") for e in events
               if e.get("type") == "Create" and e.get("field_name") == "requester_id"),
             *(e.get("author_id") or audit.get("author_id") for e in events
               if e.get("type") in COMMENT_EVENTS),
             *(u.get("id") for u in users),
             *(i.get("user_id") for i in objects(record.get("identities")))]
    if record.get("type") == USER_MERGED:
        subject = text(record.get("subject")) or ""
        found += [obj(record.get("detail")).get("id"), subject.removeprefix("zen:user:"),
                  *(v for k, v in obj(record.get("event")).items() if k.endswith("user_id"))]
    staff = {text(u.get("id")) for u in users if (text(u.get("role")) or "").lower() in AGENT_ROLES}
    return customer_ids(settings, [f for f in found if (t := text(f)) is not None and t != "-1"
                                   and t not in staff and not settings.has("agents", t)])


def _user_merged(event: Record, settings: VendorSettings) -> list[Wire]:
    """A `user.merged` webhook event: the merged user (the event's subject, `detail.id`) linked
    to the user it was merged into (the `event` object's user id), at the event's `time`."""
    merged = text(obj(event.get("detail")).get("id"))
    if merged is None:
        subject = text(event.get("subject")) or ""
        merged = subject.removeprefix("zen:user:") if subject.startswith("zen:user:") else None
    if merged is None:
        raise Unmappable("user.merged: no merged user (detail.id, or a subject zen:user:ID)")
    named = {text(value) for key, value in obj(event.get("event")).items() if key.endswith("user_id")}
    kept = sorted(i for i in named if i is not None and i != merged)
    if len(kept) != 1:
        raise Unmappable(f"user.merged of user {merged}: expected the user it was merged into "
                         f"as the event object's user id, found {kept or 'none'}")
    when = timestamp(event.get("time"), f"user.merged of user {merged}: time")
    out = link(settings, settings.customer(kept[0]), settings.customer(merged), when,
               f"Zendesk user {merged} merged into user {kept[0]}"
               f" (webhook event {text(event.get('id'))})")
    if not out:
        raise NotAMoment("user.merged: no moment, and [zendesk] links = false")
    return out


def _people_links(users: list[dict[str, Any]], identities: list[dict[str, Any]],
                  config: VendorConfig) -> list[Wire]:
    """Links from what Zendesk knows of its end-users: their addresses and X handles."""
    settings = config[SYSTEM]
    staff = {text(u.get("id")) for u in users if (text(u.get("role")) or "").lower() in AGENT_ROLES
             or settings.has("agents", text(u.get("id")))}
    with_email_identity = {text(i.get("user_id")) for i in identities
                           if (text(i.get("type")) or "").lower() == "email"}
    out: list[Wire] = []
    for user in users:
        user_id = text(user.get("id"))
        if user_id is None or user_id in staff or user_id in with_email_identity or not user.get("email"):
            continue
        when = timestamp(user.get("created_at"), f"user {user_id}: created_at")
        out += email_link(settings, settings.customer(user_id), user.get("email"), when,
                          f"same email address in Zendesk (user {user_id})")
    for identity in identities:
        user_id = text(identity.get("user_id"))
        kind = (text(identity.get("type")) or "").lower()
        value = text(identity.get("value"))
        if (user_id is None or user_id in staff or settings.has("agents", user_id) or value is None
                or kind not in ("email", "twitter")):
            continue
        where = f"user {user_id}, identity {text(identity.get('id'))}"
        when = timestamp(identity.get("created_at"), f"{where}: created_at")
        customer = settings.customer(user_id)
        if kind == "email":
            out += email_link(settings, customer, value, when, f"same email address in Zendesk ({where})")
        else:
            out += link(settings, customer, handle_id(config["x"], value), when,
                        f"X handle @{value.lstrip('@')} of Zendesk {where}")
    if not out:
        raise NotAMoment("users or identities: no moment, and nothing to link (agents, no address or X "
                         "handle, or [zendesk] links = false)")
    return out


def _audit(audit: Record, ticket: dict[str, Any], user_list: list[dict[str, Any]],
           settings: VendorSettings) -> list[Wire]:
    ticket_id = text(audit.get("ticket_id")) or text(ticket.get("id"))
    audit_id = text(audit.get("id"))
    if ticket_id is None:
        raise Unmappable(f"audit {audit_id} has no ticket_id")
    events = objects(audit.get("events"))
    created = {text(e.get("field_name")): e.get("value") for e in events if e.get("type") == "Create"}
    changed = {text(e.get("field_name")): e.get("value") for e in events if e.get("type") == "Change"}
    opening = bool(created)
    comments = [e for e in events if e.get("type") in COMMENT_EVENTS]
    if not comments:
        raise NotAMoment("an audit without a comment (field changes, notifications)")
    public = [e for e in comments if e.get("public") is not False]
    if not public:
        raise NotAMoment("an internal note (public: false)")
    requester = text(ticket.get("requester_id")) or text(created.get("requester_id"))
    group = text(changed.get("group_id")) or text(created.get("group_id")) or text(ticket.get("group_id"))
    ticket_type = (text(ticket.get("type")) or text(created.get("type")) or "").lower()
    audit_via = obj(audit.get("via"))
    ticket_via = obj(ticket.get("via")) or audit_via
    mailbox = (text(ticket.get("recipient"))
               or text(obj(obj(ticket_via.get("source")).get("to")).get("address")))
    roles = {text(u.get("id")): (text(u.get("role")) or "").lower() for u in user_list}
    occurred_at = timestamp(audit.get("created_at"), f"audit {audit_id}: created_at")
    team = settings.function("groups", group) or settings.function("mailboxes", mailbox)
    out: list[Wire] = []
    for position, comment in enumerate(public):
        author = text(comment.get("author_id")) or text(audit.get("author_id"))
        where = f"ticket {ticket_id}, audit {audit_id}"
        if author is None:
            raise Unmappable(f"{where}: a comment without author_id")
        if author == "-1":
            continue  # Zendesk itself (an automation's system comment)
        is_agent = _is_agent(author, requester, roles, settings, where)
        first = opening and position == 0
        comment_id = text(comment.get("id"))
        if not first and comment_id is None:
            raise Unmappable(f"{where}: a comment without id")
        # The customer writes through the audit's channel; an agent answers in the ticket's (a
        # reply typed in the agent workspace reaches an email ticket's requester by email).
        via = audit_via if not is_agent else ticket_via
        channel = "phone" if comment.get("type") == "VoiceComment" else _channel(via)
        if is_agent:
            if requester is None:
                raise Unmappable(f"{where}: agent {author} commented, but the ticket's requester (the "
                                 "customer) is unknown: list the audits with ?include=tickets, or import "
                                 "the audit that created the ticket")
            direction, kind, customer = "outbound", "other" if first else "answer", requester
            function = settings.function("agents", author) or team or settings.default_function
        else:
            kind = ("complaint" if ticket_type in COMPLAINT_TYPES else "question") if first else "reply"
            direction, customer = "inbound", author
            function = team or settings.default_function
        out.append(moment(
            tenant=settings.tenant,
            customer_id=settings.customer(customer),
            occurred_at=timestamp(comment["created_at"], f"{where}: created_at")
            if comment.get("created_at") else occurred_at,
            channel=channel,
            direction=direction,
            kind=kind,
            function=function,
            actor=author if is_agent else None,
            in_reply_to=None if first else source_ref(SYSTEM, f"ticket:{ticket_id}"),
            source=source_ref(SYSTEM, f"ticket:{ticket_id}" if first else f"comment:{comment_id}"),
            attributes=compact({
                "ticket_id": ticket_id, "audit_id": audit_id, "comment_id": comment_id,
                "via": text(via.get("channel")),
            }),
        ))
    if not out:
        raise NotAMoment("a comment by Zendesk itself (author -1)")
    return out


def _is_agent(author: str, requester: str | None, roles: dict[str | None, str],
              settings: VendorSettings, where: str) -> bool:
    if settings.has("agents", author) or roles.get(author) in AGENT_ROLES:
        return True
    if roles.get(author) == "end-user":
        return False
    if requester is not None:
        return author != requester
    raise Unmappable(f"{where}: cannot tell whether author {author} is the customer or an agent: the "
                     "ticket's requester is unknown (list the audits with ?include=users,tickets, or "
                     "list the brand's agents under [zendesk] agents)")


def _channel(via: dict[str, Any]) -> str:
    return CHANNELS.get((text(via.get("channel")) or "").lower(), "other")


def _rating(rating: Record, settings: VendorSettings) -> list[Wire]:
    rating_id = text(rating.get("id"))
    ticket_id = text(rating.get("ticket_id"))
    score = (text(rating.get("score")) or "").lower()
    where = f"satisfaction rating {rating_id}"
    if rating_id is None:
        raise Unmappable("a satisfaction rating without id")
    if score == "unoffered":
        raise NotAMoment("satisfaction survey not offered (score unoffered)")
    if score not in ("offered", "good", "bad"):
        raise Unmappable(f"{where}: score {score or None!r}: expected offered, unoffered, good or bad")
    requester = text(rating.get("requester_id"))
    if requester is None:
        raise Unmappable(f"{where} has no requester_id")
    assignee = text(rating.get("assignee_id"))
    group = text(rating.get("group_id"))
    function = (settings.function("agents", assignee) or settings.function("groups", group)
                or settings.default_function)
    survey = source_ref(SYSTEM, f"satisfaction_survey:{rating_id}")
    attributes = {"ticket_id": ticket_id, "rating_id": rating_id}
    ask = moment(
        tenant=settings.tenant, customer_id=settings.customer(requester),
        occurred_at=timestamp(rating.get("created_at"), f"{where}: created_at"),
        channel="email", direction="outbound", kind="ask", ask_type="survey", function=function,
        actor=assignee,
        in_reply_to=source_ref(SYSTEM, f"ticket:{ticket_id}") if ticket_id else None,
        source=survey, attributes=compact(attributes),
    )
    if score == "offered":
        return [ask]
    rated = moment(
        tenant=settings.tenant, customer_id=settings.customer(requester),
        occurred_at=timestamp(rating.get("updated_at") or rating.get("created_at"), f"{where}: updated_at"),
        channel="email", direction="inbound", kind="praise" if score == "good" else "complaint",
        function=function, sentiment=1.0 if score == "good" else -1.0, in_reply_to=survey,
        source=source_ref(SYSTEM, f"satisfaction_rating:{rating_id}"),
        attributes=compact({**attributes, "score": score, "reason": text(rating.get("reason")),
                            "commented": bool(text(rating.get("comment"))) or None}),
    )
    return [ask, rated]


SOURCE: Final = VendorSource(
    name=SYSTEM,
    title="Zendesk ticket audits (comments) and satisfaction ratings",
    formats=("jsonl",),
    records=records,
    map=map_record,
    customers=customers,
)
