// The review page: fetches a page of products, draws each product's current creative beside its proposals,
// and records approve/reject decisions. Every piece of data is put into the page as text (textContent,
// attributes), never as markup. URLs are relative, so the page also works behind a path prefix.
"use strict";

const PAGE_SIZE = 20;
let offset = 0;
let uid = 0;

function el(tag, attributes, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    if (value !== null && value !== undefined) node.setAttribute(name, String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function percent(value, digits = 2) {
  return value === null || value === undefined ? "n/a" : (value * 100).toFixed(digits) + "%";
}

function signedPercent(value) {
  if (value === null || value === undefined) return "n/a";
  return (value >= 0 ? "+" : "") + (value * 100).toFixed(1) + "%";
}

function imageUrl(id) {
  return "v1/creatives/" + encodeURIComponent(id) + ".png";
}

function figures(pairs) {
  const list = el("dl", { class: "figures" });
  for (const [term, value, tone] of pairs) {
    list.append(el("dt", {}, term), el("dd", { class: tone || null }, value));
  }
  return list;
}

function tone(value) {
  if (value === null || value === undefined || value === 0) return null;
  return value > 0 ? "positive" : "negative";
}

function currentCard(product) {
  const current = product.current;
  if (!current) {
    return el("li", { class: "card current" }, el("span", { class: "badge" }, "now"),
      el("p", {}, "No logged creative: every element of the proposals is new."));
  }
  return el("li", { class: "card current", "data-creative-id": current.creative_id },
    el("span", { class: "badge" }, "now"),
    el("img", { src: imageUrl(current.image_id), alt: "Current creative " + current.creative_id + " of " +
      product.title }),
    figures([
      ["Current creative", current.creative_id],
      ["Logged CTR", percent(current.logged_ctr)],
      ["Predicted CTR", percent(current.predicted_ctr)],
    ]));
}

function changesList(proposal) {
  if (proposal.changes.length === 0) return el("p", { class: "changes" }, "Same elements as the current creative.");
  const list = el("ul", { class: "changes", "aria-label": "Changed elements and their credit" });
  for (const change of proposal.changes) {
    const credit = (change.credit >= 0 ? "+" : "") + change.credit.toFixed(2);
    list.append(el("li", {}, change.slot + ": " + change.content + " ",
      el("span", { class: tone(change.credit) }, "(" + credit + ")")));
  }
  return list;
}

function describeDecision(decision) {
  if (!decision) return "No decision yet.";
  const when = new Date(decision.decided_at).toLocaleString();
  const verb = decision.decision === "approve" ? "Approved" : "Rejected";
  return verb + " on " + when + (decision.note ? ". Note: " + decision.note : ".");
}

function showDecision(state, decision) {
  state.textContent = describeDecision(decision);
  state.className = "decision-state" + (decision ? " " + decision.decision : "");
}

function decisionForm(product, proposal) {
  const id = "note-" + (++uid);
  const note = el("textarea", { id: id, name: "note", maxlength: 2000 });
  if (proposal.decision) note.value = proposal.decision.note;
  const state = el("p", { class: "decision-state", role: "status", "aria-live": "polite" });
  showDecision(state, proposal.decision);
  const form = el("form", { class: "decision", "aria-label": "Decision on proposal #" + proposal.rank },
    el("label", { for: id }, "Note on proposal #" + proposal.rank + " (optional)"), note);
  const buttons = el("div", { class: "buttons" });
  for (const [decision, label] of [["approve", "Approve"], ["reject", "Reject"]]) {
    const button = el("button", { type: "button", "data-decision": decision }, label);
    button.addEventListener("click", () => decide(product, proposal, decision, note, state, buttons));
    buttons.append(button);
  }
  form.addEventListener("submit", (event) => event.preventDefault());
  form.append(buttons, state);
  return form;
}

async function decide(product, proposal, decision, note, state, buttons) {
  for (const button of buttons.querySelectorAll("button")) button.disabled = true;
  state.textContent = "Saving…";
  try {
    const response = await fetch("v1/decisions", {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ product_id: product.product_id, creative_id: proposal.creative_id, decision: decision,
        note: note.value }),
    });
    const body = await response.json();
    if (!response.ok) throw new Error(errorText(body, response));
    proposal.decision = body;
    showDecision(state, body);
  } catch (error) {
    state.textContent = "Not saved: " + error.message;
    state.className = "decision-state error";
  } finally {
    for (const button of buttons.querySelectorAll("button")) button.disabled = false;
  }
}

function errorText(body, response) {
  if (body && typeof body.message === "string") return body.message;
  if (body && typeof body.detail === "string") return body.detail;
  if (body && Array.isArray(body.detail)) return body.detail.map((item) => item.msg).join("; ");
  return response.status + " " + response.statusText;
}

function proposalCard(product, proposal) {
  const rows = [
    ["Predicted CTR", percent(proposal.predicted_ctr)],
    ["Predicted lift vs now (the judge that chose it; not evidence)", signedPercent(proposal.predicted_lift),
      tone(proposal.predicted_lift)],
  ];
  const estimate = proposal.estimated_lift;
  if (estimate) {
    rows.unshift(["Lift at least (lower bound)", signedPercent(estimate.low) +
      (estimate.low > 0 ? "" : ": keep the current creative"), tone(estimate.low)]);
    rows.push(["Estimated lift (interval)", signedPercent(estimate.lift) + " [" + signedPercent(estimate.low) +
      ", " + signedPercent(estimate.high) + "] on " + estimate.impressions + " impressions", tone(estimate.lift)]);
  }
  return el("li", { class: "card proposal", "data-creative-id": proposal.creative_id },
    el("span", { class: "badge" }, "#" + proposal.rank),
    el("img", { src: imageUrl(proposal.image_id), alt: "Proposal #" + proposal.rank + " for " + product.title }),
    figures(rows), changesList(proposal), decisionForm(product, proposal));
}

function productSection(product) {
  const heading = "product-" + (++uid);
  const cards = el("ul", { class: "cards" }, currentCard(product));
  for (const proposal of product.proposals) cards.append(proposalCard(product, proposal));
  return el("section", { class: "product", "aria-labelledby": heading, "data-product-id": product.product_id },
    el("h2", { id: heading }, product.title + " (" + product.product_id + ")"),
    el("p", { class: "category" }, product.category), cards);
}

async function load() {
  const status = document.getElementById("status");
  status.textContent = "Loading…";
  try {
    const response = await fetch("v1/review/products?offset=" + offset + "&limit=" + PAGE_SIZE,
      { credentials: "same-origin" });
    const body = await response.json();
    if (!response.ok) throw new Error(errorText(body, response));
    document.getElementById("products").replaceChildren(...body.products.map(productSection));
    const last = Math.min(body.offset + body.products.length, body.total);
    status.textContent = body.total === 0 ? "This run has no products." :
      "Products " + (body.offset + 1) + "–" + last + " of " + body.total + ".";
    document.getElementById("page-info").textContent = status.textContent;
    document.getElementById("pager").hidden = body.total <= PAGE_SIZE;
    document.getElementById("previous-page").disabled = body.offset === 0;
    document.getElementById("next-page").disabled = last >= body.total;
    document.body.dataset.loaded = "true";
  } catch (error) {
    status.textContent = "Could not load the products: " + error.message;
  }
}

function readOffset() {
  const found = /offset=(\d+)/.exec(window.location.hash);
  offset = found ? Number(found[1]) : 0;
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("previous-page").addEventListener("click", () => {
    window.location.hash = "offset=" + Math.max(0, offset - PAGE_SIZE);
  });
  document.getElementById("next-page").addEventListener("click", () => {
    window.location.hash = "offset=" + (offset + PAGE_SIZE);
  });
  window.addEventListener("hashchange", () => { readOffset(); load(); });
  readOffset();
  load();
});
