"""Small steps the edge tests share: create partners and links through the admin API."""

from __future__ import annotations

from typing import Any

from tests.conftest import EdgeServer


def put_partner(edge: EdgeServer, partner_id: str, **body: Any) -> dict[str, Any]:
    with edge.admin() as admin:
        response = admin.put(f"/api/partners/{partner_id}", json=body)
    assert response.status_code in (200, 201), response.text
    result: dict[str, Any] = response.json()
    return result


def create_link(edge: EdgeServer, partner_id: str, **body: Any) -> dict[str, Any]:
    with edge.admin() as admin:
        response = admin.post(f"/api/partners/{partner_id}/links", json=body)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result
