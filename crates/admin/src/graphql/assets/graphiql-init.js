// Starts GraphiQL on /graphql. Requests carry the headers typed into the
// "Headers" tab: put {"Authorization": "Bearer whk_..."} there.
(function () {
  "use strict";
  var fetcher = GraphiQL.createFetcher({ url: "/graphql" });
  var root = ReactDOM.createRoot(document.getElementById("graphiql"));
  root.render(
    React.createElement(GraphiQL, {
      fetcher: fetcher,
      defaultHeaders: '{"Authorization": "Bearer whk_..."}',
      isHeadersEditorEnabled: true,
      shouldPersistHeaders: true,
      defaultEditorToolsVisibility: "headers",
      defaultQuery: "{\n  me { id name isAdmin }\n  webhooks { id name url events isActive }\n}\n",
    })
  );
})();
