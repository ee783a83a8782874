// The search page: POST /search, then POST /explain for a hit's "why" view. No network
// access beyond this server.
"use strict";

const $ = (selector) => document.querySelector(selector);
const number = (value, digits = 4) => (value === null || value === undefined) ? "-" : value.toFixed(digits);

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

async function post(path, body) {
  const response = await fetch(path, {method: "POST", headers: {"Content-Type": "application/json"},
                                      body: JSON.stringify(body)});
  const answer = await response.json().catch(() => ({error: `HTTP ${response.status}`}));
  if (!response.ok) throw new Error(answer.error || `HTTP ${response.status}`);
  return answer;
}

function status(message, isError = false) {
  const line = $("#status");
  line.textContent = message;
  line.classList.toggle("error", isError);
}

// A query box holding a JSON object is a vector; anything else is text.
function parseQuery(input) {
  const trimmed = input.trim();
  if (trimmed.startsWith("{")) {
    try { return {id: "q", vector: JSON.parse(trimmed)}; } catch (e) { throw new Error("the vector is not valid JSON"); }
  }
  return {id: "q", text: trimmed};
}

async function showInfo() {
  try {
    const info = await (await fetch("/info")).json();
    const generation = info.generation === null ? "" : `, generation ${info.generation}`;
    $("#about").textContent = `${info.kind} index, ${info.documents.toLocaleString()} documents${generation}` +
      (info.text_queries ? "" : " (vector queries only)");
  } catch (e) {
    $("#about").textContent = "the server does not answer";
  }
}

function whyView(explanation) {
  const view = element("div", "why-view");
  const largest = Math.max(...explanation.terms.map((t) => t.contribution), 1e-12);
  if (!explanation.terms.length) view.append(element("div", "", "The query and the document share no term."));
  for (const term of explanation.terms) {
    const row = element("div", "row");
    const track = element("div", "track");
    const bar = element("div", "bar");
    bar.style.width = `${(100 * term.contribution / largest).toFixed(1)}%`;
    track.append(bar);
    row.append(element("span", "term", term.term), track,
               element("span", "numbers", `${number(term.query_weight, 3)} × ${number(term.doc_weight, 3)} = ` +
                                          number(term.contribution)));
    view.append(row);
  }
  let total = `exact score ${number(explanation.exact_score)} (sum of ${explanation.terms.length} terms, ` +
              `${explanation.weights} weights)`;
  if (explanation.score !== null && Math.abs(explanation.score - explanation.exact_score) >
      1e-5 * Math.max(1, Math.abs(explanation.exact_score))) {
    total += `; the index's score ${number(explanation.score)}`;
  }
  view.append(element("div", "total", total));
  return view;
}

function hitItem(hit, query) {
  const item = element("li", "hit");
  const head = element("div", "head");
  const why = element("button", "why", "why");
  why.type = "button";
  head.append(element("span", "id", hit.id), element("span", "score", number(hit.score)), why);
  item.append(head);
  if (hit.text) item.append(element("p", "text", hit.text));
  why.addEventListener("click", async () => {
    const open = item.querySelector(".why-view");
    if (open) { open.remove(); return; }
    try {
      item.append(whyView(await post("/explain", {query, id: hit.id})));
    } catch (e) {
      status(e.message, true);
    }
  });
  return item;
}

async function search(event) {
  event.preventDefault();
  const results = $("#results");
  results.replaceChildren();
  let query;
  try {
    query = parseQuery($("#query").value);
  } catch (e) {
    status(e.message, true);
    return;
  }
  if (!query.vector && !query.text) { status(""); return; }
  const k = Number($("#k").value) || 10;
  status("searching…");
  const started = performance.now();
  try {
    const answer = await post("/search", {queries: [query], k, passages: true});
    const hits = answer.results[0].hits;
    for (const hit of hits) results.append(hitItem(hit, query));
    status(`${hits.length} result${hits.length === 1 ? "" : "s"} in ${(performance.now() - started).toFixed(0)} ms`);
  } catch (e) {
    status(e.message, true);
  }
}

$("#form").addEventListener("submit", search);
showInfo();
