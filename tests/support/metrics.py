"""Reading a server's Prometheus /metrics."""

from prometheus_client.parser import text_string_to_metric_families


def scrape_metrics(srv, token):
    """/metrics of a server started with METRICS_TOKEN=token: {(name, labels): value}."""
    response = srv.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(response.text)
            for sample in family.samples}
