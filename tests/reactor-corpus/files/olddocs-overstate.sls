{% if data['data']['overstate'] == 'refresh' %}
overstate_run:
  runner.state.over
{% endif %}
