"""The QA summary of one run's decisions: what a reviewer reads before (or instead of)
sending: counts per outcome and reason, fallback use per field, the encoding and segment
histogram and the estimated cost."""

from __future__ import annotations


def summary(con, run_id: str) -> dict[str, list[tuple]]:
    q = {
        "outcomes": """SELECT campaign_id, outcome, reason, count(*) AS n
            FROM sends.decisions WHERE run_id = $run GROUP BY ALL ORDER BY 1, 2, 4 DESC""",
        "fallbacks": """WITH r AS (SELECT campaign_id, fallback_fields FROM sends.decisions
                WHERE run_id = $run AND rendered_text IS NOT NULL),
            n AS (SELECT campaign_id, count(*) AS rendered FROM r GROUP BY 1)
            SELECT f.campaign_id, f.field, count(*) AS n,
                round(100.0 * count(*) / any_value(n.rendered), 1) AS pct_of_rendered
            FROM (SELECT campaign_id, unnest(fallback_fields) AS field FROM r) AS f
            JOIN n USING (campaign_id) GROUP BY ALL ORDER BY 1, 3 DESC""",
        "encoding": """SELECT encoding, segments, count(*) AS n FROM sends.decisions
            WHERE run_id = $run AND rendered_text IS NOT NULL GROUP BY ALL ORDER BY 1, 2""",
        "cost": """SELECT campaign_id, count(*) AS messages, sum(segments) AS segments,
                round(sum(estimated_cost), 4) AS estimated_cost_usd
            FROM sends.decisions WHERE run_id = $run AND outcome = 'sent'
            GROUP BY ALL ORDER BY 1""",
    }
    return {name: con.execute(sql, {"run": run_id}).fetchall() for name, sql in q.items()}
