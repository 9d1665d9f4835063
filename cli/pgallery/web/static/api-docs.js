// /api/docs: render this server's OpenAPI document (/api/openapi.json) as a page, with
// nothing but the DOM: every operation, its parameters (type, range, pattern) and answers.
"use strict";

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
  for (const child of children) {
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function resolve(doc, schema) {
  while (schema && schema.$ref) {
    schema = schema.$ref.replace(/^#\//, "").split("/").reduce((o, k) => o[k], doc);
  }
  return schema || {};
}

function describeSchema(doc, schema) {
  if (schema && schema.$ref) return schema.$ref.split("/").pop();
  schema = schema || {};
  const type = [].concat(schema.type || (schema.enum ? "enum" : "any")).join(" | ");
  const limits = [];
  if (schema.minimum !== undefined || schema.maximum !== undefined) {
    limits.push(`${schema.minimum ?? "…"} .. ${schema.maximum ?? "…"}`);
  }
  if (schema.maxLength !== undefined) limits.push(`≤ ${schema.maxLength} characters`);
  if (schema.pattern) limits.push(`matches ${schema.pattern}`);
  if (schema.enum) limits.push(schema.enum.join(", "));
  if (schema.default !== undefined) limits.push(`default ${schema.default}`);
  return limits.length ? `${type} (${limits.join("; ")})` : type;
}

function parametersTable(doc, op) {
  const rows = (op.parameters || []).map((p) => el("tr", {},
    el("td", {}, el("code", {}, p.name)), el("td", {}, p.in + (p.required ? ", required" : "")),
    el("td", {}, describeSchema(doc, p.schema)), el("td", {}, p.description || "")));
  const body = op.requestBody && op.requestBody.content;
  if (body) {
    const [media, { schema }] = Object.entries(body)[0];
    for (const [name, field] of Object.entries(resolve(doc, schema).properties || {})) {
      rows.push(el("tr", {}, el("td", {}, el("code", {}, name)), el("td", {}, `body (${media})`),
        el("td", {}, describeSchema(doc, field)), el("td", {}, field.description || "")));
    }
  }
  if (!rows.length) return null;
  return el("table", {}, el("tr", {}, el("th", {}, "parameter"), el("th", {}, "where"),
    el("th", {}, "type"), el("th", {}, "")), ...rows);
}

function responsesTable(doc, op) {
  const rows = Object.entries(op.responses || {}).map(([status, r]) => {
    const media = Object.entries(r.content || {}).map(
      ([type, c]) => `${type}: ${describeSchema(doc, c.schema)}`).join("; ");
    return el("tr", {}, el("td", {}, el("code", {}, status)), el("td", {}, r.description || ""),
      el("td", {}, media));
  });
  return el("table", {}, el("tr", {}, el("th", {}, "answer"), el("th", {}, ""),
    el("th", {}, "body")), ...rows);
}

async function render() {
  const target = document.getElementById("operations");
  let doc;
  try {
    const answer = await fetch("/api/openapi.json", { headers: { accept: "application/json" } });
    if (!answer.ok) throw new Error(`HTTP ${answer.status}`);
    doc = await answer.json();
  } catch (error) {
    target.textContent = `The document could not be read (${error.message}).`;
    return;
  }
  const byTag = new Map();
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(item)) {
      const tag = (op.tags || ["other"])[0];
      if (!byTag.has(tag)) byTag.set(tag, []);
      byTag.get(tag).push(el("section", { class: "op", id: op.operationId },
        el("h3", {}, el("span", { class: "method" }, method.toUpperCase()), " ", path),
        el("p", {}, op.summary || ""), parametersTable(doc, op) || "",
        responsesTable(doc, op)));
    }
  }
  target.replaceChildren();
  const first = ["api", "health", "meta"];           // the JSON API before the pages
  const rank = (tag) => (first.includes(tag) ? first.indexOf(tag) : first.length);
  const tags = [...byTag.keys()].sort((a, b) => rank(a) - rank(b));
  for (const tag of tags) target.append(el("h2", { class: "tag" }, tag), ...byTag.get(tag));
}

render();
