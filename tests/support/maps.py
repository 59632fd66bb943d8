"""Residency maps shared by the unit tests."""

# Every section and option of the map (CONTRACT.md section 1), valid.
VALID = """\
version: 1
cluster: acme-etl
region: eu-central-1
location_attribute: location
locations:
  newyork:
    description: ACME US data centre
    data_region: us-east-1
  frankfurt:
    data_region: eu-central-1
hosts:
  bonus.host: newyork
  tax.host: frankfurt
workloads:
  bonus:
    task_definition: christmas-bonus
    location: newyork
    container: christmas_bonus
    command: ["python3", "/app/christmas_bonus.py", "--input_file=/data/employee_data.csv"]
    environment: {RUN_MODE: full}
    timeout: 30m
    tags: {cost-centre: hr}
  tax:
    task_definition: tax-amount:3
    location: [frankfurt, newyork]
"""
