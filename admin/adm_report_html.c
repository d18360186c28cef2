/* admin/adm_report_html.c -- `xfctl report --html FILE`: the report's JSON in one HTML document
 * that draws itself (inline script and SVG, no external asset). */
#include "admin/adm.h"

#include <stdio.h>
#include <string.h>

static const char adm_report_head[] =
    "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
    "<title>crossfade rollout report</title>\n<style>\n"
    "body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#1d2433;background:#fff}\n"
    "h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:24px 0 8px}\n"
    "table{border-collapse:collapse;width:100%}th,td{padding:4px 8px;border-bottom:1px solid "
    "#e3e6ec;text-align:right;white-space:nowrap}th{background:#f4f6f9}"
    "td.l,th.l{text-align:left;white-space:normal}\n"
    ".x{color:#2563eb}.y{color:#dd6b20}.bad{color:#c53030;font-weight:600}.muted{color:#6b7280}\n"
    "svg{width:100%;height:180px;background:#fafbfc;border:1px solid #e3e6ec}\n"
    "</style></head><body>\n<h1>crossfade rollout report</h1>\n"
    "<div id=\"meta\" class=\"muted\"></div>\n"
    "<h2>Weight of y over time</h2><svg id=\"chart\" viewBox=\"0 0 1000 180\" "
    "preserveAspectRatio=\"none\"></svg>\n"
    "<h2>x against y, per weight in force</h2><table id=\"segments\"><thead><tr>"
    "<th class=\"l\">from</th><th class=\"l\">to</th><th>weight y</th><th>requests x</th>"
    "<th>requests y</th><th>y share of requests</th><th>errors x</th><th>errors y</th>"
    "<th>p50 x</th><th>p50 y</th><th>p99 x</th><th>p99 y</th><th class=\"l\">guard "
    "(pass / inconclusive / fail, seconds)</th></tr></thead><tbody></tbody></table>\n"
    "<p class=\"muted\">The weight is the share of clients (keys) on y; the share of requests "
    "differs when some clients are heavier than others. Test traffic is left out.</p>\n"
    "<h2>Every change</h2><table id=\"events\"><thead><tr><th class=\"l\">#</th>"
    "<th class=\"l\">time (UTC)</th><th class=\"l\">who</th><th class=\"l\">command</th>"
    "<th class=\"l\">what</th><th class=\"l\">from</th><th class=\"l\">to</th></tr></thead>"
    "<tbody></tbody></table>\n<script type=\"application/json\" id=\"data\">";

static const char adm_report_tail[] =
    "</script>\n<script>\n(function(){\n"
    "var R=JSON.parse(document.getElementById('data').textContent);\n"
    "function t(ms){return new Date(ms).toISOString().replace('T',' ').slice(0,19);}\n"
    "function us(v){if(!v)return '-';if(v<1000)return v+' \\u00b5s';if(v<1e6)return (v/1000)"
    ".toFixed(1)+' ms';return (v/1e6).toFixed(2)+' s';}\n"
    "function pct(n,d){return d?(100*n/d).toFixed(2)+' %':'-';}\n"
    "function row(tb,cells){var tr=document.createElement('tr');cells.forEach(function(c){"
    "var td=document.createElement('td');td.textContent=c[0];if(c[1])td.className=c[1];"
    "tr.appendChild(td);});tb.appendChild(tr);}\n"
    "document.getElementById('meta').textContent='crossfade '+R.version+' \\u2014 since '+"
    "t(R.started_ms)+' UTC, written '+t(R.now_ms)+' UTC, '+R.segments.length+' segments, '+"
    "R.events.length+' changes';\n"
    "var sb=document.querySelector('#segments tbody');\n"
    "R.segments.forEach(function(s){var ex=s.x.requests?s.x.errors/s.x.requests:0,"
    "ey=s.y.requests?s.y.errors/s.y.requests:0;\n"
    "row(sb,[[t(s.start_ms),'l'],[t(s.end_ms),'l'],[s.weight.toFixed(2)+' %'],[s.x.requests,"
    "'x'],[s.y.requests,'y'],[pct(s.y.requests,s.x.requests+s.y.requests)],[pct(s.x.errors,"
    "s.x.requests),'x'],[pct(s.y.errors,s.y.requests),ey>ex+0.01?'bad':'y'],[us(s.x.p50_us),"
    "'x'],[us(s.y.p50_us),'y'],[us(s.x.p99_us),'x'],[us(s.y.p99_us),s.y.p99_us>1.5*s.x.p99_us&&"
    "s.x.p99_us?'bad':'y'],[s.guard.pass+' / '+s.guard.inconclusive+' / '+s.guard.fail,"
    "s.guard.fail?'l bad':'l']]);});\n"
    "var eb=document.querySelector('#events tbody');\n"
    "R.events.forEach(function(e){row(eb,[[e.seq,'l'],[t(e.time_ms),'l'],[e.who,'l'],[e.command,"
    "'l'],[e.what,'l'],[e.from,'l'],[e.to,e.command==='guard'?'l bad':'l']]);});\n"
    "var svg=document.getElementById('chart'),NS='http://www.w3.org/2000/svg';\n"
    "if(R.segments.length){var t0=R.segments[0].start_ms,t1=R.segments[R.segments.length-1]"
    ".end_ms,span=Math.max(t1-t0,1),d='';\n"
    "R.segments.forEach(function(s,i){var x0=(s.start_ms-t0)/span*1000,x1=(s.end_ms-t0)/span*"
    "1000,y=170-s.weight*1.6;d+=(i?'L':'M')+x0.toFixed(1)+','+y.toFixed(1)+'L'+x1.toFixed(1)+"
    "','+y.toFixed(1);});\n"
    "var p=document.createElementNS(NS,'path');p.setAttribute('d',d);p.setAttribute('fill',"
    "'none');p.setAttribute('stroke','#dd6b20');p.setAttribute('stroke-width','2');"
    "p.setAttribute('vector-effect','non-scaling-stroke');svg.appendChild(p);}\n"
    "})();\n</script>\n</body></html>\n";

int
adm_report_html(FILE *f, const char *json, size_t len)
{
    /* The JSON has <, > and & escaped (adm_json_str): it cannot end the script element. */
    if (memmem(json, len, "</", 2) != NULL)
        return -1;
    if (fwrite(adm_report_head, 1, sizeof(adm_report_head) - 1, f) != sizeof(adm_report_head) - 1 ||
        fwrite(json, 1, len, f) != len ||
        fwrite(adm_report_tail, 1, sizeof(adm_report_tail) - 1, f) != sizeof(adm_report_tail) - 1)
        return -1;
    return 0;
}
