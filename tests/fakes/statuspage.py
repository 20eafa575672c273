"""FakeStatuspage: Atlassian Statuspage's REST API v1, incidents only.

Shapes from Atlassian's public "Statuspage API" reference (developer.statuspage.io):
`Authorization: OAuth <api key>`; "Create an incident" POST /v1/pages/{page_id}/incidents with
`{incident: {name (required), status: investigating|identified|monitoring|resolved, body,
impact_override: none|minor|major|critical, deliver_notifications, component_ids, components:
{id: operational|degraded_performance|partial_outage|major_outage|under_maintenance}}}` answered
201 with the incident (`id`, `status`, `incident_updates`, ...); "Update an incident" PATCH
/v1/pages/{page_id}/incidents/{incident_id} with the same object answered 200; errors as
`{"error": "..."}` (401 could not authenticate, 404 not found) or `{"error": ["..."]}` (422)."""
import itertools
import re

from fakehttp import FakeService

STATUSES = {"investigating", "identified", "monitoring", "resolved"}
COMPONENT = {"operational", "degraded_performance", "partial_outage", "major_outage", "under_maintenance"}
IMPACT = {"none", "minor", "major", "critical"}
PATH = re.compile(r"^/v1/pages/([a-z0-9]+)/incidents(?:/([a-z0-9]+))?$")


class FakeStatuspage(FakeService):
    def __init__(self, api_key, page_id):
        super().__init__()
        self.api_key = api_key
        self.page_id = page_id
        self.incidents = {}          # id -> incident
        self._ids = itertools.count(1)

    def _check(self, inc, creating):
        errors = []
        if not isinstance(inc, dict):
            return ["incident is required"]
        known = {"name", "status", "body", "impact_override", "deliver_notifications", "component_ids",
                 "components", "scheduled_for", "scheduled_until", "metadata", "backfilled"}
        for k in inc:
            if k not in known:
                errors.append("unknown attribute %s" % k)
        if creating and not (isinstance(inc.get("name"), str) and inc["name"]):
            errors.append("Name can't be blank")
        if "status" in inc and inc["status"] not in STATUSES:
            errors.append("Status is not included in the list")
        if "impact_override" in inc and inc["impact_override"] not in IMPACT:
            errors.append("Impact override is not included in the list")
        for cid, st in (inc.get("components") or {}).items():
            if st not in COMPONENT:
                errors.append("component %s status %s is not valid" % (cid, st))
        ids = inc.get("component_ids")
        if ids is not None and (not isinstance(ids, list) or not all(isinstance(i, str) for i in ids)):
            errors.append("component_ids must be a list of ids")
        return errors

    def handle(self, req):
        m = PATH.match(req["path"])
        if not m or req["method"] not in ("POST", "PATCH", "PUT"):
            self.problem("unexpected %s %s" % (req["method"], req["path"]))
            return 404, {"error": "The requested resource could not be found."}
        if req["headers"].get("authorization") != "OAuth " + self.api_key:
            return 401, {"error": "Could not authenticate"}
        if m.group(1) != self.page_id:
            return 404, {"error": "The requested resource could not be found."}
        body = req["json"]
        inc = body.get("incident") if isinstance(body, dict) else None
        creating = m.group(2) is None
        if creating != (req["method"] == "POST"):
            self.problem("%s on %s" % (req["method"], req["path"]))
        errors = self._check(inc, creating)
        if errors:
            self.problem("; ".join(errors))
            return 422, {"error": errors}
        with self.lock:
            if creating:
                iid = "p%011d" % next(self._ids)
                incident = {"id": iid, "page_id": self.page_id, "name": inc["name"],
                            "status": inc.get("status", "investigating"), "impact": inc.get("impact_override", "none"),
                            "components": dict(inc.get("components") or {}), "incident_updates": []}
                self.incidents[iid] = incident
                status = 201
            else:
                incident = self.incidents.get(m.group(2))
                if incident is None:
                    return 404, {"error": "The requested resource could not be found."}
                incident["status"] = inc.get("status", incident["status"])
                incident["components"].update(inc.get("components") or {})
                status = 200
            incident["incident_updates"].insert(0, {"status": incident["status"], "body": inc.get("body", "")})
            return status, dict(incident)
