"""The war room a ``warRoom: true`` level opens: where it is, and what the Incident records of it.

The handbook's level 3 convenes a war room. The policy says how (``spec.warRoom``): a Slack
channel ``inc-<incident>`` that the bot opens, invites everybody paged to and posts the
incident in (when the policy has a ``SlackBot`` channel), and/or a call bridge URL announced in
every page from then on. The place is recorded on the Incident (``status.warRoom``) and in its
timeline when the level fires; opening the Slack channel is a keyed step like any page.
"""

import re

from oncall_operator.api import incident, policy
from oncall_operator.domain import links

SLACK_NAME_MAX = 80
_UNSAFE = re.compile(r"[^a-z0-9_-]+")


def slack_name(incident_name: str) -> str:
    """``inc-<name>``: lowercase letters, digits, hyphens and underscores, at most 80 characters (Slack's rule)."""
    return ("inc-" + _UNSAFE.sub("-", incident_name.lower()))[:SLACK_NAME_MAX].rstrip("-_")


def bot_channel(spec: policy.EscalationPolicySpec) -> str | None:
    """The SlackBot channel that opens the war room, or None."""
    if not spec.war_room.slack_channel:
        return None
    return next((c.name for c in spec.channels if c.type == policy.ChannelType.SLACK_BOT), None)


def place(spec: policy.EscalationPolicySpec, inc: incident.Incident) -> str:
    """Where the war room is: ``#inc-<name>`` and/or the bridge URL (filled in); empty when the policy has neither."""
    parts = []
    if bot_channel(spec):
        parts.append("#" + slack_name(inc.metadata.name))
    if spec.war_room.bridge_url:
        url = links.safe_url(links.expand(spec.war_room.bridge_url, links.values(inc)))
        if url:
            parts.append(url)
    return " ".join(parts)
