"""The registry's lists, tree, link PATCH and case-insensitive aliases on a real three-node Redis
Cluster (`redis+cluster://`): the indexes share the registry's hash tag."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import EdgeServer, make_settings, wait_for
from tests.edge.helpers import create_link, put_partner
from tests.edge.test_cluster import cluster_url

__all__ = ["cluster_url"]  # the fixture, shared with the edge's own cluster tests

pytestmark = pytest.mark.servers


def test_lists_tree_and_disabled_links_on_redis_cluster(cluster_url: str, tmp_path: Path) -> None:
    edge = EdgeServer(make_settings(tmp_path, cluster_url)).start()
    try:
        put_partner(edge, "cl-master", type="ib", name="Cluster Capital")
        put_partner(edge, "cl-sub", parentPartnerId="cl-master", name="Cluster Sub")
        link = create_link(edge, "cl-sub", alias="Cluster-Promo")
        with edge.admin() as admin:
            found = admin.get("/api/partners", params={"q": "CLUSTER S"}).json()
            children = admin.get("/api/partners", params={"parent": "cl-master"}).json()
            tree = admin.get("/api/partners/cl-master/tree").json()
            links = admin.get("/api/partners/cl-sub/links").json()
            qr = admin.get("/api/links/cluster-promo/qr.svg")
            disabled = admin.patch("/api/links/CLUSTER-PROMO", json={"status": "disabled"})
        assert [p["partnerId"] for p in found["items"]] == ["cl-sub"]
        assert [p["partnerId"] for p in children["items"]] == ["cl-sub"]
        assert tree["tree"]["descendantCount"] == 1
        assert tree["tree"]["children"][0]["linkCount"] == 1
        assert [item["code"] for item in links["items"]] == [link["code"]] == ["Cluster-Promo"]
        assert qr.status_code == 200
        assert disabled.json()["status"] == "disabled"
        with edge.client() as client:
            wait_for(lambda: client.get("/r/cluster-promo").status_code == 404, timeout=5.0,
                     what="the disable through cluster pub/sub")
    finally:
        edge.stop()
