"""Bottom floor: filesystem, resources, failpoints, progress and reports; imports nothing of egoindex."""
