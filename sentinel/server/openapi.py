"""The OpenAPI 3.0 description of the approval API (``GET /openapi.json``), written by hand so it
says exactly what the handlers accept and return."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {"type": "string"},
        "field": {"type": "string", "nullable": True},
        "candidates": {"type": "array", "items": {"type": "string"}},
    },
}
_NULLABLE_STR = {"type": "string", "nullable": True}
_ID = {"type": "string", "pattern": "^[A-Za-z0-9_-]{8,64}$"}

_STATUS = {
    "type": "object",
    "required": ["action_id", "status", "approved_by", "decided_by", "reason"],
    "properties": {
        "action_id": {
            "type": "string",
            "description": "the id asked about: the caller's own action_id, or the request id",
        },
        "request_id": {"type": "string", "description": "the id the server gave the request"},
        "client_action_id": {
            "type": "string",
            "nullable": True,
            "description": "the submitter's action_id (a correlation key, never the request id)",
        },
        "status": {
            "type": "string",
            "enum": ["pending", "approved", "denied", "expired", "cancelled"],
        },
        "approved_by": _NULLABLE_STR,
        "decided_by": _NULLABLE_STR,
        "decided_at": _NULLABLE_STR,
        "reason": _NULLABLE_STR,
        "digest": {"type": "string"},
        "expires_at": _NULLABLE_STR,
        "message": {"type": "string"},
        "edit": {
            "type": "object",
            "nullable": True,
            "additionalProperties": True,
            "description": "approved with edited arguments: values (run the call with these in "
            "place), changes (name, before, after), digest, operator",
        },
    },
}

_DECISION = {
    "type": "object",
    "required": ["action_id", "status", "decided_by", "message"],
    "properties": {
        "action_id": {"type": "string"},
        "status": {"type": "string"},
        "decided_by": _NULLABLE_STR,
        "decided_at": _NULLABLE_STR,
        "reason": _NULLABLE_STR,
        "message": {"type": "string"},
        "error": {"type": "string"},
        "approvals": {"type": "integer", "description": "approving votes so far"},
        "quorum": {"type": "integer", "description": "approvals the request needs"},
        "denials": {"type": "integer"},
        "deny_quorum": {"type": "integer"},
        "votes": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "operator": {"type": "string"},
                    "verdict": {"type": "string", "enum": ["approve", "deny"]},
                    "signed": {"type": "boolean"},
                },
            },
        },
        "edit": {
            "type": "object",
            "nullable": True,
            "description": "an approval with edited arguments: the new values, each change "
            "(name, before, after), the edit digest the signature covers, who changed it",
            "properties": {
                "values": {"type": "object", "additionalProperties": True},
                "changes": {"type": "array", "items": {"type": "object"}},
                "digest": {"type": "string"},
                "operator": _NULLABLE_STR,
                "label": _NULLABLE_STR,
            },
        },
    },
}

_NAMES = {
    "type": "array",
    "maxItems": 100,
    "items": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$"},
}
_TERMS = {
    "type": "object",
    "nullable": True,
    "additionalProperties": False,
    "description": (
        "who decides this request, as in a rule (approvers name token groups, token roles or "
        "operators); self_approval is false unless given: the submitting token cannot approve"
    ),
    "properties": {
        "approvers": _NAMES,
        "quorum": {"type": "integer", "minimum": 1, "maximum": 20},
        "deny_quorum": {"type": "integer", "minimum": 1, "maximum": 20},
        "self_approval": {"type": "boolean"},
        "escalate_after": {"type": "number", "exclusiveMinimum": True, "minimum": 0},
        "escalate_to": _NAMES,
    },
}

_SUBMIT = {
    "type": "object",
    "required": ["function_name"],
    "properties": {
        "action_id": {
            **_ID,
            "description": (
                "the caller's own id for this request: a correlation key (poll its status by it "
                "with the same credential); the server chooses the request id"
            ),
        },
        "function_name": {"type": "string", "minLength": 1, "maxLength": 200},
        "rule_id": {"type": "string", "nullable": True, "maxLength": 200},
        "parameters": {"type": "object", "nullable": True, "additionalProperties": True},
        "arguments_schema": {
            "type": "object",
            "nullable": True,
            "additionalProperties": True,
            "description": "the JSON Schema of the parameters (with properties): operators can "
            "then approve the call with edited arguments, checked against it",
        },
        "reason": {"type": "string", "nullable": True, "maxLength": 2000},
        "agent_id": {"type": "string", "nullable": True, "maxLength": 200},
        "context": {"type": "object", "nullable": True, "additionalProperties": True},
        "timestamp": {"type": "string", "nullable": True, "maxLength": 64},
        "timeout_at": {
            "type": "string",
            "nullable": True,
            "format": "date-time",
            "description": "UTC ISO time the requester stops waiting",
        },
        "timeout_seconds": {
            "type": "number",
            "nullable": True,
            "exclusiveMinimum": True,
            "minimum": 0,
            "maximum": 604800,
        },
        "digest": {"type": "string", "nullable": True, "pattern": "^[0-9a-f]{64}$"},
        "value_at_risk": {"type": "number", "nullable": True},
        "terms": _TERMS,
    },
}

_PENDING_ITEM = {
    "type": "object",
    "required": ["action_id", "status", "function_name", "parameters"],
    "properties": {
        "action_id": {"type": "string", "description": "the request id (decide with it)"},
        "client_action_id": _NULLABLE_STR,
        "submitted_by": _NULLABLE_STR,
        "status": {"type": "string"},
        "function_name": {"type": "string"},
        "agent_id": _NULLABLE_STR,
        "parameters": {"type": "object", "additionalProperties": True},
        "context": {"type": "object", "nullable": True, "additionalProperties": True},
        "rule_id": _NULLABLE_STR,
        "reason": {"type": "string"},
        "value_at_risk": {"type": "number", "nullable": True},
        "risk_score": {"type": "number", "nullable": True},
        "digest": {"type": "string"},
        "timestamp": {"type": "string"},
        "timeout_at": {"type": "string"},
        "terms": {
            "type": "object",
            "description": "who may decide: approvers, quorum, self_approval, deny_quorum, "
            "escalate_after, escalate_to",
            "additionalProperties": True,
        },
        "approvals": {"type": "integer", "description": "approving votes so far"},
        "votes": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "operator": {"type": "string"},
                    "verdict": {"type": "string"},
                    "signed": {"type": "boolean"},
                },
            },
        },
    },
}


def _json(schema: Any, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    text = {
        400: "the body is not JSON",
        401: "missing or invalid credentials",
        403: "an agent credential on an operator endpoint",
        404: "unknown request id",
        413: "body too large",
        422: "invalid field (the error names it)",
        503: "the store is unavailable",
    }
    return {str(c): _json({"$ref": "#/components/schemas/Error"}, text[c]) for c in codes}


_ID_PARAM = {
    "name": "action_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
    "description": (
        "the request id (32 hex characters) or, for operators, a unique prefix of it (8 or more "
        "characters; a prefix of several requests is a 409 listing them); agent credentials may "
        "also use their own action_id, and read only their own requests"
    ),
}
_REASON_BODY = {
    "required": False,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {"reason": {"type": "string", "nullable": True, "maxLength": 2000}},
            }
        }
    },
}


_APPROVE_BODY = {
    "required": False,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {
                    "reason": {"type": "string", "nullable": True, "maxLength": 2000},
                    "arguments": {
                        "type": "object",
                        "nullable": True,
                        "additionalProperties": True,
                        "description": (
                            "edit, then approve: the parameters to change and their new JSON "
                            "values, checked against the schema the request recorded (a value "
                            "that does not fit, an unknown parameter, a masked one: 422 naming "
                            "it, nothing recorded); the call runs once with them"
                        ),
                    },
                },
            }
        }
    },
}


def _decide_op(verb: str) -> dict[str, Any]:
    return {
        "summary": f"{verb.capitalize()} a pending request (compare-and-set)",
        "operationId": verb,
        "parameters": [_ID_PARAM],
        "requestBody": _APPROVE_BODY if verb == "approve" else _REASON_BODY,
        "responses": {
            "200": _json({"$ref": "#/components/schemas/Decision"}, "decided"),
            "202": _json(
                {"$ref": "#/components/schemas/Decision"},
                "vote recorded; the request still waits for its quorum (the tally says how far)",
            ),
            "403": _json(
                {
                    "anyOf": [
                        {"$ref": "#/components/schemas/Decision"},
                        {"$ref": "#/components/schemas/Error"},
                    ]
                },
                "refused, nothing recorded: an agent credential, a token not among the rule's "
                "approvers, the token's own request, a second vote, or no trusted service key",
            ),
            "409": _json(
                {
                    "anyOf": [
                        {"$ref": "#/components/schemas/Decision"},
                        {"$ref": "#/components/schemas/Error"},
                    ]
                },
                "already decided (says who and when), expired, or an ambiguous id prefix",
            ),
            **_errors(400, 401, 404, 413, 422, 503),
        },
    }


# --- standing grants (sentinel/server/grants.py) ------------------------------------------------
_BOUND = {
    "type": "object",
    "required": ["param", "op", "value"],
    "properties": {
        "param": {"type": "string"},
        "op": {"type": "string", "enum": ["lte", "lt", "gte", "gt", "eq", "in", "startswith"]},
        "value": {},
    },
}
_GRANT = {
    "type": "object",
    "required": ["id", "status", "agent", "function", "bounds", "used_count", "signed"],
    "properties": {
        "id": {"type": "string"},
        "status": {"type": "string", "enum": ["active", "revoked", "expired", "exhausted"]},
        "state": {
            "type": "string",
            "description": "the status now (an active grant past its expiry is expired)",
        },
        "agent": {"type": "string"},
        "function": {"type": "string"},
        "bounds": {"type": "array", "items": {"$ref": "#/components/schemas/Bound"}},
        "expires_at": {"type": "number", "nullable": True},
        "time_left": {"type": "number", "nullable": True},
        "max_count": {"type": "integer", "nullable": True},
        "max_total": {"type": "number", "nullable": True},
        "used_count": {"type": "integer"},
        "used_total": {"type": "number"},
        "rule_id": _NULLABLE_STR,
        "request_id": _NULLABLE_STR,
        "created_at": {"type": "number"},
        "created_by": {"type": "string"},
        "signer": _NULLABLE_STR,
        "signed": {"type": "boolean"},
        "reason": _NULLABLE_STR,
        "ended_at": {"type": "number", "nullable": True},
        "ended_by": _NULLABLE_STR,
        "end_reason": _NULLABLE_STR,
        "uses": {"type": "array", "items": {"type": "object"}},
    },
}
_GRANT_TERMS: dict[str, Any] = {
    "where": {
        "type": "array",
        "items": {"type": "string"},
        "maxItems": 50,
        "description": "bounds as text: 'amount <= 500', 'destination in {ACC-1, ACC-2}'",
    },
    "bounds": {"type": "array", "items": {"$ref": "#/components/schemas/Bound"}, "maxItems": 50},
    "for": {"type": "string", "description": "15m, 1h, 8h, 2d … or forever (until revoked)"},
    "count": {"type": "integer", "minimum": 1, "nullable": True},
    "max_total": {"type": "number", "exclusiveMinimum": True, "minimum": 0, "nullable": True},
    "reason": {"type": "string", "nullable": True, "maxLength": 2000},
    "confirm": {
        "type": "boolean",
        "description": "make a wide grant (no bound at all, or no bound on the value)",
    },
}
_GRANT_CREATE = {
    "type": "object",
    "required": ["agent", "function", "for"],
    "additionalProperties": False,
    "properties": {
        "agent": {"type": "string", "maxLength": 200, "description": "agent id ('' for none)"},
        "function": {"type": "string", "minLength": 1, "maxLength": 200},
        **_GRANT_TERMS,
    },
}
_GRANT_FROM_REQUEST = {
    "type": "object",
    "additionalProperties": False,
    "properties": dict(_GRANT_TERMS),
}
_GRANT_ID_PARAM = {
    "name": "grant_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
    "description": "the grant id or a unique prefix of it (8 or more characters)",
}


def _grant_paths() -> dict[str, Any]:
    grant = {"$ref": "#/components/schemas/Grant"}
    return {
        "/grants": {
            "get": {
                "summary": "Standing grants, newest first",
                "operationId": "listGrants",
                "parameters": [
                    {"name": "status", "in": "query", "required": False,
                     "schema": {"type": "string",
                                "enum": ["active", "revoked", "expired", "exhausted"]}},
                    {"name": "limit", "in": "query", "required": False,
                     "schema": {"type": "integer", "minimum": 1, "maximum": 10000}},
                ],  # fmt: skip
                "responses": {
                    "200": _json({"type": "array", "items": grant}, "grants"),
                    **_errors(401, 403, 422, 503),
                },
            },
            "post": {
                "summary": "Create a standing grant (signed by the service key for the token)",
                "operationId": "createGrant",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/GrantCreate"}}},
                },  # fmt: skip
                "responses": {
                    "201": _json(grant, "created"),
                    **_errors(400, 401, 403, 413, 422, 503),
                },
            },
        },
        "/grants/{grant_id}": {
            "get": {
                "summary": "One grant and its uses",
                "operationId": "showGrant",
                "parameters": [_GRANT_ID_PARAM],
                "responses": {
                    "200": _json(grant, "the grant"),
                    "409": _json({"$ref": "#/components/schemas/Error"}, "ambiguous id prefix"),
                    **_errors(401, 403, 404, 503),
                },
            }
        },
        "/grants/{grant_id}/revoke": {
            "post": {
                "summary": "Revoke a grant now (a later call no longer matches it)",
                "operationId": "revokeGrant",
                "parameters": [_GRANT_ID_PARAM],
                "requestBody": _REASON_BODY,
                "responses": {
                    "200": _json(grant, "revoked"),
                    "409": _json(
                        {"type": "object", "required": ["error"],
                         "properties": {"error": {"type": "string"}, "grant": grant,
                                        "field": _NULLABLE_STR,
                                        "candidates": {"type": "array",
                                                       "items": {"type": "string"}}}},
                        "the grant had ended already, or an ambiguous id prefix",
                    ),  # fmt: skip
                    **_errors(400, 401, 403, 404, 413, 422, 503),
                },
            }
        },
        "/approval/{action_id}/approve-with-grant": {
            "post": {
                "summary": "Approve a pending request and create a grant from it, in one decision",
                "operationId": "approveWithGrant",
                "parameters": [_ID_PARAM],
                "requestBody": {
                    "required": False,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/GrantFromRequest"}}},
                },  # fmt: skip
                "responses": {
                    "200": _json(
                        {"allOf": [{"$ref": "#/components/schemas/Decision"},
                                   {"type": "object", "properties": {"grant": grant}}]},
                        "approved, and the grant made (bounds default to the request's values)",
                    ),  # fmt: skip
                    "403": _json(
                        {"anyOf": [{"$ref": "#/components/schemas/Decision"},
                                   {"$ref": "#/components/schemas/Error"}]},
                        "refused, nothing recorded",
                    ),  # fmt: skip
                    "409": _json(
                        {"anyOf": [{"$ref": "#/components/schemas/Decision"},
                                   {"$ref": "#/components/schemas/Error"}]},
                        "already decided, expired, a quorum request, or an ambiguous prefix",
                    ),  # fmt: skip
                    **_errors(400, 401, 404, 413, 422, 503),
                },
            }
        },
    }


@lru_cache(maxsize=1)
def openapi_document() -> dict[str, Any]:
    """The API description (built once)."""
    from sentinel import __version__

    security: list[dict[str, list[str]]] = [
        {"bearer": []},
        {"token": []},
        {"signature": [], "timestamp": []},
    ]
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Sentinel approval API",
            "version": str(__version__),
            "description": (
                "Submit approval requests, read their status, and approve or deny them. Every "
                "endpoint except /health needs a bearer token (operator or agent role) or an "
                "HMAC signature (agent role)."
            ),
        },
        "servers": [{"url": "/"}],
        "security": security,
        "paths": {
            "/health": {
                "get": {
                    "summary": "Liveness (no authentication)",
                    "operationId": "health",
                    "security": [],
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "required": ["status"],
                                "properties": {
                                    "status": {"type": "string"},
                                    "service": {"type": "string"},
                                },
                            },
                            "the server is up",
                        )
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "summary": "This description",
                    "operationId": "openapi",
                    "responses": {
                        "200": _json({"type": "object"}, "OpenAPI 3.0 document"),
                        **_errors(401),
                    },
                }
            },
            "/approval": {
                "post": {
                    "summary": "Submit an approval request (the webhook body)",
                    "operationId": "submit",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/Submit"}}
                        },
                    },
                    "responses": {
                        "202": {
                            **_json(
                                {"$ref": "#/components/schemas/Status"},
                                "stored (or already known)",
                            ),
                            "links": {
                                op: {
                                    "operationId": op,
                                    "parameters": {"action_id": "$response.body#/action_id"},
                                }
                                for op in ("status", "approve", "deny")
                            },
                        },
                        "409": _json(
                            {"$ref": "#/components/schemas/Error"},
                            "action_id already used by a different request",
                        ),
                        **_errors(400, 401, 413, 422, 503),
                    },
                }
            },
            "/approval/{action_id}/status": {
                "get": {
                    "summary": "Status of a request",
                    "operationId": "status",
                    "parameters": [_ID_PARAM],
                    "responses": {
                        "200": _json(
                            {"$ref": "#/components/schemas/Status"}, "the request's status"
                        ),
                        "409": _json(
                            {"$ref": "#/components/schemas/Error"},
                            "an id prefix that matches several requests (they are listed)",
                        ),
                        **_errors(401, 404, 503),
                    },
                }
            },
            "/approval/{action_id}/approve": {"post": _decide_op("approve")},
            "/approval/{action_id}/deny": {"post": _decide_op("deny")},
            **_grant_paths(),
            "/approvals/pending": {
                "get": {
                    "summary": "Pending requests, oldest first (arguments redacted)",
                    "operationId": "pending",
                    "parameters": [
                        {
                            "name": "limit",
                            "in": "query",
                            "required": False,
                            "schema": {
                                "type": "integer",
                                "minimum": 1,
                                "maximum": 10000,
                                "default": 100,
                            },
                            "description": "how many pending requests, oldest first",
                        }
                    ],
                    "responses": {
                        "200": _json(
                            {"type": "array", "items": {"$ref": "#/components/schemas/Pending"}},
                            "pending requests",
                        ),
                        **_errors(401, 403, 422, 503),
                    },
                }
            },
        },
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "token": {"type": "apiKey", "in": "header", "name": "X-Sentinel-Token"},
                "signature": {"type": "apiKey", "in": "header", "name": "X-Sentinel-Signature"},
                "timestamp": {"type": "apiKey", "in": "header", "name": "X-Sentinel-Timestamp"},
            },
            "schemas": {
                "Error": _ERROR,
                "Status": _STATUS,
                "Decision": _DECISION,
                "Submit": _SUBMIT,
                "Pending": _PENDING_ITEM,
                "Bound": _BOUND,
                "Grant": _GRANT,
                "GrantCreate": _GRANT_CREATE,
                "GrantFromRequest": _GRANT_FROM_REQUEST,
            },
        },
    }


__all__ = ["openapi_document"]
