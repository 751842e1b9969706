"""The description of the registry's admin routes: partners, their lists and tree, links, QR codes,
partner tokens (edge/registry/admin.py), from the registry's own rules and limits."""

from __future__ import annotations

import functools
from typing import Final

from edge.openapi import (
    ADMIN,
    EPOCH_MS,
    JSON,
    Description,
    Parameter,
    Schema,
    answer,
    answer_object,
    array,
    choice,
    errors,
    in_path,
    integer,
    json_answer,
    nullable,
    operation,
    or_empty,
    query,
    ref,
    request_object,
    text,
)
from edge.registry.destinations import MAX_DESTINATION_LENGTH
from edge.registry.edits import MAX_NAME_LENGTH
from edge.registry.links import MAX_CODE_LENGTH
from edge.registry.model import (
    LINK_STATUSES,
    MAX_TREE_DEPTH,
    PARTNER_ID_PATTERN,
    PARTNER_STATUSES,
    PARTNER_TYPES,
    TAG_PATTERN,
)
from edge.registry.paging import DEFAULT_LIMIT, DEFAULT_TREE_DEPTH, MAX_LIMIT, MAX_SEARCH_LENGTH
from edge.registry.qr import DEFAULT_QR_SIZE, MAX_QR_SIZE, MIN_QR_SIZE

TAG: Final = "partners and links"
PARTNER_ID: Final = text(f"^{PARTNER_ID_PATTERN.pattern}$", description="a partner id")
CAMPAIGN: Final = text(f"^{TAG_PATTERN.pattern}$")
CODE: Final = text(f"^[A-Za-z0-9_-]{{1,{MAX_CODE_LENGTH}}}$",
                   description="a link's code or alias (aliases match in any case)")
URL: Final = text(max_length=MAX_DESTINATION_LENGTH, description="an http(s) URL")
CURSOR: Final = query("cursor", or_empty(text("^[A-Za-z0-9_-]{1,200}$")),
                      "the nextCursor of the previous page; none for the first page")
LIMIT: Final = query("limit", integer(1, MAX_LIMIT), f"items per page (default {DEFAULT_LIMIT})")
FLAG: Final = choice(["true", "false", "1", "0", "yes", "no"])
PARTNER_IN_PATH: Final = in_path("partner_id", PARTNER_ID, "the partner's id")
CODE_IN_PATH: Final = in_path("code", CODE, "the link's code or alias")


def page_of(item: Schema) -> Schema:
    return answer_object({"items": array(item), "nextCursor": nullable(text(
        description="where the next page starts; null on the last page"))})


PARTNER: Final = answer_object({
    "partnerId": text(), "parentPartnerId": nullable(text()), "type": choice(PARTNER_TYPES),
    "status": choice(PARTNER_STATUSES), "name": nullable(text()),
    "destination": nullable(text()), "level": integer(1, description="1 for a root"),
    "ancestors": array(text(), max_items=MAX_TREE_DEPTH),
    "webhookUrl": nullable(text()), "ctidUserId": nullable(integer(1)),
    "planId": nullable(text(description="its own plan; null: the nearest ancestor's applies")),
    "createdAt": EPOCH_MS, "updatedAt": EPOCH_MS,
}, description="A partner; `ancestors` root first, without the partner itself.")
COUNTS: Final = {"childCount": integer(0), "descendantCount": integer(0), "linkCount": integer(0)}
LINK: Final = answer_object({
    "code": text(description="what its URL carries: the alias, else the generated code"),
    "generatedCode": text(), "alias": nullable(text()), "url": text(fmt="uri"),
    "partnerId": text(), "campaign": nullable(text()), "subId": nullable(text()),
    "destination": nullable(text(description="null: the partner's, else the registration URL")),
    "status": choice(LINK_STATUSES), "createdAt": EPOCH_MS, "updatedAt": EPOCH_MS,
})
TREE_NODE: Final = answer_object({
    "partnerId": text(), "name": nullable(text()), "type": choice(PARTNER_TYPES),
    "status": choice(PARTNER_STATUSES), "level": integer(1), **COUNTS,
    "children": array(ref("TreeNode")),
})
SUBTREE: Final = answer_object({
    "partnerId": text(), "depth": integer(1), "nodeCount": integer(1), "maxNodes": integer(1),
    "truncated": {"type": "boolean", "description": "some nodes were left out (maxNodes)"},
    "tree": ref("TreeNode"),
})
PARTNER_EDIT: Final = request_object({
    "parentPartnerId": nullable(PARTNER_ID), "name": nullable(text(max_length=MAX_NAME_LENGTH)),
    "type": nullable(choice(PARTNER_TYPES)), "status": nullable(choice(PARTNER_STATUSES)),
    "destination": nullable(URL), "webhookUrl": nullable(URL),
    "ctidUserId": nullable(integer(1, 2**63 - 1)),
    "planId": nullable(text(f"^{PARTNER_ID_PATTERN.pattern}$")),
}, description="Fields left out stay as they are; a new partner is an active individual root.")
LINK_EDIT: Final = request_object({
    "campaign": nullable(CAMPAIGN), "subId": nullable(CAMPAIGN), "destination": nullable(URL),
    "alias": nullable(text("^[A-Za-z0-9][A-Za-z0-9_-]{2,63}$")),
})
LINK_PATCH: Final = request_object({
    "status": choice(LINK_STATUSES, "a disabled link answers like an unknown code"),
    "destination": nullable(URL),
})
QR_SIZE: Final[Parameter] = query("size", integer(MIN_QR_SIZE, MAX_QR_SIZE),
                                  f"width in pixels (default {DEFAULT_QR_SIZE})")


def qr(media_type: str) -> dict[int | str, dict[str, object]]:
    return {
        200: answer("the link's URL as a QR code",
                    {media_type: {"type": "string", "contentMediaType": media_type}},
                    headers={"ETag": "changes with the URL, format and size"}),
        304: answer("not changed since the ETag in If-None-Match"),
        **errors(401, 404, 422, 503),
    }


# An admin route of this part.
admin: Final = functools.partial(operation, tag=TAG, security=ADMIN)


REGISTRY: Final = Description(
    paths={
        "/api/partners": {"get": admin(
            "List partners", description="In id order: everyone, a parent's children or the "
            "roots; `q` finds text in the id or name, in any case.",
            parameters=[
                query("parent", or_empty(PARTNER_ID), "only this partner's direct children"),
                query("roots", or_empty(FLAG), "only partners without a parent"),
                query("q", text(max_length=MAX_SEARCH_LENGTH), "text in the id or name"),
                query("status", or_empty(choice(PARTNER_STATUSES)), "only partners in this status"),
                LIMIT, CURSOR],
            answers={200: json_answer("a page of partners with their counts",
                                      page_of(ref("PartnerSummary"))),
                     **errors(401, 404, 422, 503)})},
        "/api/partners/{partner_id}": {
            "get": admin("A partner", parameters=[PARTNER_IN_PATH],
                         answers={200: json_answer("the partner", ref("Partner")),
                                  **errors(401, 404, 422, 503)}),
            "put": admin(
                "Create or update a partner", parameters=[PARTNER_IN_PATH],
                body={JSON: PARTNER_EDIT}, body_required=False,
                example={"parentPartnerId": "apex", "name": "Apex Dubai desk", "type": "ib"},
                description="A new parent moves the whole subtree (refused if it would make a "
                            f"loop or a tree deeper than {MAX_TREE_DEPTH} levels).",
                answers={200: json_answer("updated", ref("Partner")),
                         201: json_answer("created", ref("Partner")),
                         **errors(400, 401, 409, 413, 422, 503)}),
        },
        "/api/partners/{partner_id}/links": {
            "get": admin("A partner's links, newest first",
                         parameters=[PARTNER_IN_PATH,
                                     query("status", or_empty(choice(LINK_STATUSES)),
                                           "only these"),
                                     LIMIT, CURSOR],
                         answers={200: json_answer("a page of links", page_of(ref("Link"))),
                                  **errors(401, 404, 422, 503)}),
            "post": admin("Create a link", parameters=[PARTNER_IN_PATH],
                          body={JSON: LINK_EDIT}, body_required=False,
                          example={"campaign": "spring", "subId": "telegram",
                                   "alias": "apex-spring"},
                          answers={201: json_answer("the new link", ref("Link")),
                                   **errors(400, 401, 404, 409, 413, 422, 503)}),
        },
        "/api/partners/{partner_id}/tree": {"get": admin(
            "A partner's subtree with roll-up counts",
            parameters=[PARTNER_IN_PATH, query("depth", integer(1, MAX_TREE_DEPTH),
                                               f"levels below it (default {DEFAULT_TREE_DEPTH})")],
            answers={200: json_answer("the subtree", ref("Subtree")),
                     **errors(401, 404, 422, 503)})},
        "/api/partners/{partner_id}/tokens": {
            "post": admin("Issue a partner token",
                          description="A bearer token for the analytics and commissions routes "
                                      "that sees this partner's subtree only.",
                          parameters=[PARTNER_IN_PATH],
                          answers={201: json_answer("the token", answer_object(
                              {"token": text(), "partnerId": text()})),
                                   **errors(401, 404, 422, 503)}),
            "delete": admin("Revoke every token issued to a partner so far",
                            parameters=[PARTNER_IN_PATH],
                            answers={200: json_answer("revoked", answer_object({
                                "partnerId": text(), "tokensNotBefore": EPOCH_MS})),
                                     **errors(401, 404, 422, 503)}),
        },
        "/api/links/{code}": {
            "get": admin("A link", parameters=[CODE_IN_PATH],
                         answers={200: json_answer("the link", ref("Link")),
                                  **errors(401, 404, 503)}),
            "patch": admin("Disable, enable or re-point a link", parameters=[CODE_IN_PATH],
                           body={JSON: LINK_PATCH}, body_required=False,
                           example={"status": "disabled"},
                           answers={200: json_answer("the link", ref("Link")),
                                    **errors(400, 401, 404, 413, 422, 503)}),
        },
        "/api/links/{code}/qr.svg": {"get": admin(
            "A link's QR code (SVG)", parameters=[CODE_IN_PATH, QR_SIZE],
            answers=qr("image/svg+xml"))},
        "/api/links/{code}/qr.png": {"get": admin(
            "A link's QR code (PNG)", parameters=[CODE_IN_PATH, QR_SIZE],
            answers=qr("image/png"))},
        "/api/alias-clashes": {"get": admin(
            "Aliases taken from younger links when aliases stopped minding case",
            answers={200: json_answer("the clashes", answer_object({"items": array(
                answer_object({"alias": text(), "partnerId": text(), "code": text(),
                               "keptBy": answer_object({"alias": text(), "partnerId": text()}),
                               "resolvedAt": EPOCH_MS}))})),
                     **errors(401, 503)})},
    },
    components={
        "schemas": {
            "Partner": PARTNER, "Link": LINK, "TreeNode": TREE_NODE, "Subtree": SUBTREE,
            "PartnerSummary": {"allOf": [ref("Partner"), answer_object(COUNTS)]},
        },
    },
    tags={TAG: "The registry, behind the admin token"},
)
