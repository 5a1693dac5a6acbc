document.addEventListener("click", function (event) {
  var link = event.target.closest && event.target.closest("a.kb-cite");
  if (!link) return;
  event.preventDefault();
  event.stopPropagation();
  var item = document.getElementById(link.getAttribute("href").slice(1));
  if (!item) return;
  item.scrollIntoView({behavior: "smooth", block: "center"});
  item.classList.remove("kb-flash");
  void item.offsetWidth;
  item.classList.add("kb-flash");
  setTimeout(function () { item.classList.remove("kb-flash"); }, 2000);
}, true);
