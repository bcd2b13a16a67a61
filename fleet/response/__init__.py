"""From warning to response, by grid cell (网格): the fleet's response chain.

    register    grid cells, hazard points, key units, lightning inspections (import, versions)
    plan        the response plan as versioned data; a cell's proposed level Ⅳ..Ⅰ
    grid        register, plan, cell signals, flood-control decisions, actions (database)
    engine      station events (through the contract) -> cell signals -> proposals -> drafts
    cap         CAP 1.2: compose zh-CN + en-US, render (lxml), validate (OASIS XSD), sign
    alerts      draft -> approved (second person) -> published; Update/Cancel by reference
    channels    MQTT, webhooks (Standard Webhooks), e-mail, SMS gateway, Atom feed; drill-safe
    outbox      durable delivery, channel order per unit, acknowledgements, escalation
    feed        the CAP Atom feed
    drills      Exercise runs and their report
    checks      cross-station data checks;  onsite: downwind sector;  field: reports, incidents
    afteraction after-action report per cell;  partners: read-only sharing (SensorThings shape)
    service     everything assembled, with its worker;  api: the router;  cli: the commands
    showcase    the demo's epilogue

The sample district in ``data/`` is SYNTHETIC: invented cells, places, units and contacts.
"""
